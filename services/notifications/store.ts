// The notifications table, read newest first by (created_at, notification_id)
// so keyset pagination is stable even when two share a millisecond.
import type { Database, Queryable } from "@shop/platform";

export type ChannelName = "EMAIL" | "SMS";

export interface NotificationRecord {
  notificationId: string;
  userId: string;
  channel: ChannelName;
  subject: string;
  body: string;
  /** ISO 8601 in UTC: fixed width, so text order is time order. */
  createdAt: string;
  sourceEventId: string;
}

interface NotificationRow {
  notification_id: string;
  user_id: string;
  channel: ChannelName;
  subject: string;
  body: string;
  created_at: string;
  source_event_id: string;
}

/** Where the previous page ended. */
export type NotificationCursor = {
  at: string;
  id: string;
};

const toRecord = (row: NotificationRow): NotificationRecord => ({
  notificationId: row.notification_id,
  userId: row.user_id,
  channel: row.channel,
  subject: row.subject,
  body: row.body,
  createdAt: row.created_at,
  sourceEventId: row.source_event_id,
});

export type NotificationStore = ReturnType<typeof createNotificationStore>;

export function createNotificationStore(db: Database) {
  return {
    /** Inserts in the given transaction; answers false when this event already has a notification on this channel. */
    async insert(tx: Queryable, n: NotificationRecord): Promise<boolean> {
      const changed = await tx.run(
        "INSERT INTO notifications (notification_id, user_id, channel, subject, body, created_at, source_event_id) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_event_id, channel) DO NOTHING",
        n.notificationId,
        n.userId,
        n.channel,
        n.subject,
        n.body,
        n.createdAt,
        n.sourceEventId,
      );
      return changed === 1;
    },
    /** One page of a user's notifications, newest first, one row more than asked to tell whether more follow. */
    async listForUser(userId: string, after: NotificationCursor | undefined, limit: number): Promise<NotificationRecord[]> {
      const rows = after
        ? await db.all<NotificationRow>(
            "SELECT * FROM notifications WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND notification_id < ?)) ORDER BY created_at DESC, notification_id DESC LIMIT ?",
            userId,
            after.at,
            after.at,
            after.id,
            limit + 1,
          )
        : await db.all<NotificationRow>("SELECT * FROM notifications WHERE user_id = ? ORDER BY created_at DESC, notification_id DESC LIMIT ?", userId, limit + 1);
      return rows.map(toRecord);
    },
  };
}
