import type { Migration } from "@shop/platform";

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "notifications",
    // The contract promises one notification per event and channel, however
    // often the event is delivered: the unique key is that promise, kept by
    // the database even if the inbox ever let a duplicate through.
    sql: `
      CREATE TABLE notifications (
        notification_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        source_event_id TEXT NOT NULL,
        UNIQUE (source_event_id, channel)
      );
      CREATE INDEX notifications_by_user ON notifications (user_id, created_at, notification_id);
    `,
  },
];
