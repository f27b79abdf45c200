// The in-process consumer's worker: takes due events from its inbox table and
// runs each through the shared event handling, which records the event as
// handled in the same transaction as the handler's effects, so a redelivered
// event changes nothing. A failing event is retried with exponential backoff
// and, after maxAttempts, moved to the dead letters with its error; the events
// behind it keep flowing meanwhile. With the JetStream bus the same worker
// drains only the dead letters an operator put back (RetryDeadLetter).
import type { Logger } from "../telemetry/logger.ts";
import { createAlarm } from "./alarm.ts";
import { createEventHandling } from "./event-handling.ts";
import type { Delivery, EventHandling, EventHandlingOptions } from "./event-handling.ts";

export { RetryLater } from "./event-handling.ts";
export type { EventContext, EventHandler, HandlerEntry } from "./event-handling.ts";

export interface ConsumerOptions extends EventHandlingOptions {
  /** Events handled at once. Default 8. */
  concurrency?: number;
  /** How often to look at the inbox when nobody kicked. Default 250 ms. */
  pollMs?: number;
}

export interface Consumer {
  readonly name: string;
  readonly types: readonly string[];
  start(): void;
  kick(): void;
  stop(): Promise<void>;
}

interface InboxRow {
  seq: number | bigint;
  event_id: string;
  type: string;
  payload: Uint8Array;
  headers: string;
  occurred_at: string;
  source: string;
  attempts: number | bigint;
  received_at: number | bigint;
}

export function createConsumer(options: ConsumerOptions): Consumer {
  return createInboxWorker(createEventHandling(options), options.logger, options);
}

/** The worker over a handling already built (the event runtime shares one per service). */
export function createInboxWorker(handling: EventHandling, logger: Logger, options: { concurrency?: number; pollMs?: number } = {}): Consumer {
  const { name } = handling;
  const { db } = handling;
  const concurrency = options.concurrency ?? 8;
  const pollMs = options.pollMs ?? 250;
  const active = new Map<string, Promise<void>>();
  let running = false;
  let loop: Promise<void> | undefined;

  const alarm = createAlarm();
  const sleep = (ms: number) => alarm.sleep(ms);

  async function deliver(row: InboxRow): Promise<void> {
    await handling.handle(inboxDelivery(row));
  }

  const finishedDuringPoll = new Set<string>();
  let polling = false;

  async function run(): Promise<void> {
    while (running) {
      const free = concurrency - active.size;
      let started = 0;
      if (free > 0) {
        // A job that finishes while this query runs may already be gone from
        // `active` when its row comes back as still pending (the query's
        // snapshot predates the job's commit). Remember those and skip them,
        // or the event would be handled a second time.
        finishedDuringPoll.clear();
        polling = true;
        let rows: InboxRow[];
        try {
          rows = await db.all<InboxRow>(
            "SELECT seq, event_id, type, payload, headers, occurred_at, source, attempts, received_at FROM event_inbox WHERE consumer = ? AND status = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
            name,
            Date.now(),
            free + active.size,
          );
        } catch (err) {
          // The database is unreachable for now (a restart, a failover): wait and look again.
          polling = false;
          logger.warn({ err: (err as Error).message, consumer: name }, "cannot read the inbox; retrying in 1 s");
          await sleep(1000);
          continue;
        }
        polling = false;
        for (const row of rows) {
          if (started >= free) break;
          if (active.has(row.event_id) || finishedDuringPoll.has(row.event_id)) continue;
          const job = deliver(row)
            .catch((err: unknown) => logger.error({ err, consumer: name }, "event bookkeeping failed"))
            .finally(() => {
              active.delete(row.event_id);
              if (polling) finishedDuringPoll.add(row.event_id);
              alarm.wakeIfSleeping();
            });
          active.set(row.event_id, job);
          started++;
        }
      }
      if (started === 0) await sleep(pollMs);
    }
  }

  return {
    name,
    types: handling.types,
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    kick() {
      alarm.ring();
    },
    async stop() {
      running = false;
      alarm.wakeIfSleeping();
      await loop;
      await Promise.all(active.values());
    },
  };
}

function inboxDelivery(row: InboxRow): Delivery {
  return {
    event: {
      id: row.event_id,
      type: row.type,
      payload: row.payload,
      headers: JSON.parse(row.headers) as Record<string, string>,
      occurredAt: row.occurred_at,
      source: row.source,
    },
    attempts: Number(row.attempts),
    receivedAt: Number(row.received_at),
  };
}
