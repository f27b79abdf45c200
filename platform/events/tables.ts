// The tables every service's database gets for its events: the outbox it
// writes in the same transaction as its state, the inbox of each consumer it
// hosts, and the dead letters. The inbox is the record of handled event ids
// (written in the handler's transaction) and of attempts, whichever the bus;
// with the in-process bus it is also the durable queue (status 'pending'),
// with JetStream the stream is, and the inbox holds a row only once an event
// was handled, failed ('retrying') or died.
import type { Migration } from "../store/sqlite.ts";

export const eventMigrations: readonly Migration[] = [
  {
    version: 900001,
    name: "platform: event outbox, inbox and dead letters",
    sql: `
      CREATE TABLE event_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        payload BLOB NOT NULL,
        headers TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        source TEXT NOT NULL,
        published_at TEXT
      );
      CREATE INDEX event_outbox_unpublished ON event_outbox (published_at, seq);
      CREATE TABLE event_inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        payload BLOB NOT NULL,
        headers TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        received_at INTEGER NOT NULL,
        handled_at TEXT,
        UNIQUE (consumer, event_id)
      );
      CREATE INDEX event_inbox_due ON event_inbox (consumer, status, next_attempt_at);
      CREATE TABLE event_dead_letters (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        payload BLOB NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        failed_at TEXT NOT NULL,
        PRIMARY KEY (consumer, event_id)
      );
    `,
  },
];
