// The embedded bus: publishing writes the event into the inbox table of every
// consumer subscribed to its type, in that consumer's own database. The inbox
// is durable, so an event accepted here survives a crash before it is handled;
// the consumer's worker picks it up again on restart.
import type { Database } from "../store/sqlite.ts";
import type { EventBus, EventRecord } from "./event-record.ts";

export interface InProcessSubscriber {
  readonly name: string;
  readonly types: readonly string[];
  readonly db: Database;
  kick(): void;
}

export interface InProcessBus extends EventBus {
  readonly kind: "in-process";
  /** Subscribe every consumer before any relay starts: events published earlier are not replayed to it. */
  subscribe(subscriber: InProcessSubscriber): void;
}

export function createInProcessBus(): InProcessBus {
  const subscribers: InProcessSubscriber[] = [];
  return {
    kind: "in-process",
    subscribe(subscriber) {
      subscribers.push(subscriber);
    },
    async publish(events: readonly EventRecord[]) {
      const now = Date.now();
      for (const sub of subscribers) {
        const wanted = events.filter((e) => sub.types.includes(e.type));
        if (wanted.length === 0) continue;
        await sub.db.transaction(async (tx) => {
          for (const e of wanted) {
            // A second publish of the same event (the relay crashed before
            // marking it) is dropped here by the unique (consumer, event_id).
            await tx.run(
              "INSERT INTO event_inbox (consumer, event_id, type, payload, headers, occurred_at, source, status, attempts, next_attempt_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (consumer, event_id) DO NOTHING",
              sub.name,
              e.id,
              e.type,
              e.payload,
              JSON.stringify(e.headers),
              e.occurredAt,
              e.source,
              now,
              now,
            );
          }
        });
        sub.kick();
      }
    },
    async close() {},
  };
}
