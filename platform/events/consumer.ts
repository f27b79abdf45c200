// A consumer's worker: takes due events from its inbox, runs the handler, and
// records the event as handled in the same transaction as the handler's
// effects, so a redelivered event changes nothing. A failing event is retried
// with exponential backoff and, after maxAttempts, moved to the dead letters
// with its error; the events behind it keep flowing meanwhile.
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Database, Queryable } from "../store/sqlite.ts";
import type { Logger } from "../telemetry/logger.ts";
import { tracer } from "../telemetry/tracing.ts";
import type { Emit, Outbox } from "./outbox.ts";

/** Thrown by a handler whose precondition is not met yet (an event it depends on has not arrived). */
export class RetryLater extends Error {
  override name = "RetryLater";
}

export interface EventContext {
  readonly id: string;
  readonly type: string;
  readonly source: string;
  readonly occurredAt: Date;
  /**
   * Runs the handler's effects in one transaction of the consumer's database,
   * together with the record that this event was handled. Call it at most once;
   * a handler that never calls it has the event marked handled after it returns.
   */
  commit<T>(fn: (tx: Queryable, emit: Emit) => Promise<T>): Promise<T>;
}

export type EventHandler<D extends DescMessage = DescMessage> = (event: MessageShape<D>, ctx: EventContext) => Promise<void>;

export interface HandlerEntry {
  readonly schema: DescMessage;
  readonly handle: EventHandler;
}

export interface ConsumerOptions {
  /** Durable name, the service that hosts it ("payments"). */
  name: string;
  db: Database;
  outbox: Outbox;
  handlers: ReadonlyMap<string, HandlerEntry>;
  logger: Logger;
  /** Attempts before an event becomes a dead letter. Default EVENT_MAX_ATTEMPTS, then 5. */
  maxAttempts?: number;
  /** Events handled at once. Default 8. */
  concurrency?: number;
  /** First retry delay; doubles each attempt up to 5 s. Default 100 ms. */
  backoffMs?: number;
  /** How long RetryLater may postpone an event before it counts as a failure. Default 60 s. */
  retryLaterWindowMs?: number;
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
  const { name, db, outbox, handlers, logger } = options;
  const maxAttempts = options.maxAttempts ?? Number(process.env.EVENT_MAX_ATTEMPTS ?? 5);
  const concurrency = options.concurrency ?? 8;
  const backoffMs = options.backoffMs ?? 100;
  const retryLaterWindowMs = options.retryLaterWindowMs ?? 60_000;
  const pollMs = options.pollMs ?? 250;
  const active = new Map<string, Promise<void>>();
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let kicked = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (kicked) {
        kicked = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function markHandled(tx: Queryable, eventId: string): Promise<void> {
    await tx.run(
      "UPDATE event_inbox SET status = 'handled', handled_at = ?, last_error = NULL WHERE consumer = ? AND event_id = ?",
      new Date().toISOString(),
      name,
      eventId,
    );
  }

  async function handle(row: InboxRow): Promise<void> {
    const entry = handlers.get(row.type);
    const headers = JSON.parse(row.headers) as Record<string, string>;
    const parent = propagation.extract(context.active(), headers);
    const span = tracer().startSpan(
      `consume ${row.type}`,
      { kind: SpanKind.CONSUMER, attributes: { "messaging.system": "shop", "messaging.consumer": name, "messaging.message.id": row.event_id, "shop.service": name } },
      parent,
    );
    const started = performance.now();
    try {
      await context.with(trace.setSpan(parent, span), async () => {
        if (!entry) {
          await db.transaction((tx) => markHandled(tx, row.event_id));
          return;
        }
        let event: MessageShape<DescMessage>;
        try {
          event = fromBinary(entry.schema, row.payload);
        } catch (err) {
          // A payload that cannot be decoded never will be: dead at once.
          await deadLetter(row, `cannot decode ${row.type}: ${(err as Error).message}`, Number(row.attempts) + 1);
          return;
        }
        let committed = false;
        const ctx: EventContext = {
          id: row.event_id,
          type: row.type,
          source: row.source,
          occurredAt: new Date(row.occurred_at),
          commit(fn) {
            if (committed) throw new Error(`event ${row.event_id}: commit called twice`);
            committed = true;
            return outbox.transaction(async (tx, emit) => {
              const result = await fn(tx, emit);
              await markHandled(tx, row.event_id);
              return result;
            });
          },
        };
        await entry.handle(event, ctx);
        if (!committed) await db.transaction((tx) => markHandled(tx, row.event_id));
      });
      logger.debug({ consumer: name, event_id: row.event_id, type: row.type, duration_ms: Math.round(performance.now() - started) }, "event handled");
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      await failed(row, err);
    } finally {
      span.end();
    }
  }

  async function failed(row: InboxRow, err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const waited = Date.now() - Number(row.received_at);
    if (err instanceof RetryLater && waited < retryLaterWindowMs) {
      await db.run(
        "UPDATE event_inbox SET next_attempt_at = ?, last_error = ? WHERE consumer = ? AND event_id = ?",
        Date.now() + Math.min(1000, 50 + waited / 10),
        message,
        name,
        row.event_id,
      );
      return;
    }
    const attempts = Number(row.attempts) + 1;
    if (attempts >= maxAttempts) {
      await deadLetter(row, message, attempts);
      return;
    }
    const delay = Math.min(5000, backoffMs * 2 ** (attempts - 1)) * (0.75 + Math.random() / 2);
    logger.warn({ consumer: name, event_id: row.event_id, type: row.type, attempts, err: message }, "event handler failed; will retry");
    await db.run(
      "UPDATE event_inbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE consumer = ? AND event_id = ?",
      attempts,
      Date.now() + delay,
      message,
      name,
      row.event_id,
    );
  }

  async function deadLetter(row: InboxRow, error: string, attempts: number): Promise<void> {
    logger.error({ consumer: name, event_id: row.event_id, type: row.type, attempts, err: error }, "event moved to dead letters");
    await db.transaction(async (tx) => {
      await tx.run(
        "UPDATE event_inbox SET status = 'dead', attempts = ?, last_error = ? WHERE consumer = ? AND event_id = ?",
        attempts,
        error,
        name,
        row.event_id,
      );
      await tx.run(
        "INSERT INTO event_dead_letters (consumer, event_id, type, source, payload, error, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (consumer, event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts, failed_at = excluded.failed_at",
        name,
        row.event_id,
        row.type,
        row.source,
        row.payload,
        error,
        attempts,
        new Date().toISOString(),
      );
    });
  }

  async function run(): Promise<void> {
    while (running) {
      const free = concurrency - active.size;
      let started = 0;
      if (free > 0) {
        const rows = await db.all<InboxRow>(
          "SELECT seq, event_id, type, payload, headers, occurred_at, source, attempts, received_at FROM event_inbox WHERE consumer = ? AND status = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
          name,
          Date.now(),
          free + active.size,
        );
        for (const row of rows) {
          if (started >= free) break;
          if (active.has(row.event_id)) continue;
          const job = handle(row)
            .catch((err: unknown) => logger.error({ err, consumer: name }, "event bookkeeping failed"))
            .finally(() => {
              active.delete(row.event_id);
              wake?.();
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
    types: [...handlers.keys()],
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    kick() {
      if (wake) wake();
      else kicked = true;
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      await Promise.all(active.values());
    },
  };
}
