// Running one delivery of an event through its consumer's handler: the part
// the in-process inbox worker and the JetStream consumer share. It decodes the
// payload, continues the emitter's trace, runs the handler with a commit that
// records the event as handled in the same transaction as its effects, and
// keeps the failure bookkeeping (attempts, RetryLater, dead letters) in the
// consumer's own event_inbox and event_dead_letters tables. What the
// transport does next (nothing, ack, nak, term) follows from the outcome.
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Database, Queryable } from "../store/sqlite.ts";
import type { Logger } from "../telemetry/logger.ts";
import { tracer } from "../telemetry/tracing.ts";
import type { EventRecord } from "./event-record.ts";
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

export interface EventHandlingOptions {
  /** The consuming service ("payments"): the consumer column of its inbox rows. */
  name: string;
  db: Database;
  outbox: Outbox;
  handlers: ReadonlyMap<string, HandlerEntry>;
  logger: Logger;
  /** Attempts before an event becomes a dead letter. Default EVENT_MAX_ATTEMPTS, then 5. */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt up to 5 s. Default 100 ms. */
  backoffMs?: number;
  /** How long RetryLater may postpone an event before it counts as a failure. Default 60 s. */
  retryLaterWindowMs?: number;
}

/**
 * Inbox statuses. pending: queued for the in-process worker (the in-process
 * bus's inbox, or a dead letter put back by RetryDeadLetter). retrying: failed
 * or postponed, and JetStream will deliver it again. handled, dead: final.
 */
export type InboxStatus = "pending" | "retrying" | "handled" | "dead";

export interface InboxState {
  readonly status: InboxStatus;
  readonly attempts: number;
  readonly receivedAt: number;
}

/** One delivery of an event to a consumer, with what the consumer remembers of earlier ones. */
export interface Delivery {
  readonly event: EventRecord;
  /** Failed attempts so far; RetryLater does not count. */
  readonly attempts: number;
  /** When this consumer first saw the event (ms since the epoch): RetryLater's window starts here. */
  readonly receivedAt: number;
  /** No further delivery will come (JetStream's max_deliver is reached): any failure dead-letters it. */
  readonly last?: boolean;
}

export type Outcome =
  /** Handled now, or found already handled. */
  | { readonly kind: "handled" }
  /** Failed (counted) or postponed by RetryLater (not counted): try again after delayMs. */
  | { readonly kind: "retry"; readonly delayMs: number; readonly counted: boolean }
  /** Moved to the dead letters. */
  | { readonly kind: "dead" };

export interface EventHandling {
  readonly name: string;
  /** The consumer's own database: its inbox, dead letters and the handlers' effects. */
  readonly db: Database;
  readonly types: readonly string[];
  readonly maxAttempts: number;
  readonly retryLaterWindowMs: number;
  /** What this consumer's inbox holds for the event, if anything. */
  state(eventId: string): Promise<InboxState | undefined>;
  /** Runs the handler and writes the bookkeeping; never throws for a handler's failure. */
  handle(delivery: Delivery): Promise<Outcome>;
}

/** The pause after a RetryLater: short at first, then at most a second. */
export function retryLaterDelayMs(waitedMs: number): number {
  return Math.min(1000, 50 + waitedMs / 10);
}

/** The effect of this event was already recorded, by a concurrent or earlier delivery: roll back. */
class AlreadyHandled extends Error {
  override name = "AlreadyHandled";
}

export function createEventHandling(options: EventHandlingOptions): EventHandling {
  const { name, db, outbox, handlers, logger } = options;
  const maxAttempts = options.maxAttempts ?? Number(process.env.EVENT_MAX_ATTEMPTS ?? 5);
  const backoffMs = options.backoffMs ?? 100;
  const retryLaterWindowMs = options.retryLaterWindowMs ?? 60_000;

  // Every write is an upsert on (consumer, event_id): the in-process bus has
  // inserted the row before delivery, JetStream has not. Each write is also
  // guarded by the row's status, so a delivery that lost a race (a JetStream
  // redelivery while the first was still running, a second replica) can
  // neither handle an event twice nor turn a handled event into a failure.
  const insertColumns = "consumer, event_id, type, payload, headers, occurred_at, source, status, attempts, next_attempt_at, last_error, received_at, handled_at";
  const insertValues = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";
  const envelope = (e: EventRecord) => [name, e.id, e.type, e.payload, JSON.stringify(e.headers), e.occurredAt, e.source] as const;

  /** Records the event as handled; false when it was already handled or dead. */
  async function claim(tx: Queryable, d: Delivery): Promise<boolean> {
    const now = new Date().toISOString();
    const changed = await tx.run(
      `INSERT INTO event_inbox (${insertColumns}) VALUES (${insertValues})
       ON CONFLICT (consumer, event_id) DO UPDATE SET status = 'handled', handled_at = excluded.handled_at, last_error = NULL
       WHERE event_inbox.status NOT IN ('handled', 'dead')`,
      ...envelope(d.event),
      "handled",
      d.attempts,
      Date.now(),
      null,
      d.receivedAt,
      now,
    );
    return changed > 0;
  }

  async function postpone(d: Delivery, attempts: number, delayMs: number, error: string): Promise<void> {
    await db.run(
      `INSERT INTO event_inbox (${insertColumns}) VALUES (${insertValues})
       ON CONFLICT (consumer, event_id) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error
       WHERE event_inbox.status NOT IN ('handled', 'dead')`,
      ...envelope(d.event),
      "retrying",
      attempts,
      Math.round(Date.now() + delayMs),
      error,
      d.receivedAt,
      null,
    );
  }

  async function deadLetter(d: Delivery, error: string, attempts: number): Promise<void> {
    const e = d.event;
    logger.error({ consumer: name, event_id: e.id, type: e.type, attempts, err: error }, "event moved to dead letters");
    await db.transaction(async (tx) => {
      const changed = await tx.run(
        `INSERT INTO event_inbox (${insertColumns}) VALUES (${insertValues})
         ON CONFLICT (consumer, event_id) DO UPDATE SET status = 'dead', attempts = excluded.attempts, last_error = excluded.last_error
         WHERE event_inbox.status <> 'handled'`,
        ...envelope(e),
        "dead",
        attempts,
        Date.now(),
        error,
        d.receivedAt,
        null,
      );
      if (changed === 0) return;
      await tx.run(
        "INSERT INTO event_dead_letters (consumer, event_id, type, source, payload, error, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (consumer, event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts, failed_at = excluded.failed_at",
        name,
        e.id,
        e.type,
        e.source,
        e.payload,
        error,
        attempts,
        new Date().toISOString(),
      );
    });
  }

  async function failed(d: Delivery, err: unknown): Promise<Outcome> {
    const e = d.event;
    const message = err instanceof Error ? err.message : String(err);
    const waited = Date.now() - d.receivedAt;
    if (err instanceof RetryLater && waited < retryLaterWindowMs && !d.last) {
      const delayMs = retryLaterDelayMs(waited);
      await postpone(d, d.attempts, delayMs, message);
      return { kind: "retry", delayMs, counted: false };
    }
    const attempts = d.attempts + 1;
    if (attempts >= maxAttempts || d.last) {
      await deadLetter(d, message, attempts);
      return { kind: "dead" };
    }
    const delayMs = Math.min(5000, backoffMs * 2 ** (attempts - 1)) * (0.75 + Math.random() / 2);
    logger.warn({ consumer: name, event_id: e.id, type: e.type, attempts, err: message }, "event handler failed; will retry");
    await postpone(d, attempts, delayMs, message);
    return { kind: "retry", delayMs, counted: true };
  }

  async function handle(d: Delivery): Promise<Outcome> {
    const e = d.event;
    const entry = handlers.get(e.type);
    const parent = propagation.extract(context.active(), e.headers);
    const span = tracer().startSpan(
      `consume ${e.type}`,
      { kind: SpanKind.CONSUMER, attributes: { "messaging.system": "shop", "messaging.consumer": name, "messaging.message.id": e.id, "shop.service": name } },
      parent,
    );
    const started = performance.now();
    try {
      const outcome = await context.with(trace.setSpan(parent, span), async (): Promise<Outcome> => {
        if (!entry) {
          await db.transaction((tx) => claim(tx, d));
          return { kind: "handled" };
        }
        let event: MessageShape<DescMessage>;
        try {
          event = fromBinary(entry.schema, e.payload);
        } catch (err) {
          // A payload that cannot be decoded never will be: dead at once.
          await deadLetter(d, `cannot decode ${e.type}: ${(err as Error).message}`, d.attempts + 1);
          return { kind: "dead" };
        }
        let committed = false;
        const ctx: EventContext = {
          id: e.id,
          type: e.type,
          source: e.source,
          occurredAt: new Date(e.occurredAt),
          commit(fn) {
            if (committed) throw new Error(`event ${e.id}: commit called twice`);
            committed = true;
            return outbox.transaction(async (tx, emit) => {
              // Claimed first: a concurrent twin waits on (or fails at) the
              // same row instead of running its effects too.
              if (!(await claim(tx, d))) throw new AlreadyHandled(`event ${e.id} was already handled by ${name}`);
              return fn(tx, emit);
            });
          },
        };
        await entry.handle(event, ctx);
        if (!committed) await db.transaction((tx) => claim(tx, d));
        return { kind: "handled" };
      });
      logger.debug({ consumer: name, event_id: e.id, type: e.type, duration_ms: Math.round(performance.now() - started) }, "event handled");
      return outcome;
    } catch (err) {
      if (err instanceof AlreadyHandled) {
        logger.debug({ consumer: name, event_id: e.id, type: e.type }, "event already handled; effects rolled back");
        return { kind: "handled" };
      }
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      return await failed(d, err);
    } finally {
      span.end();
    }
  }

  return {
    name,
    db,
    types: [...handlers.keys()],
    maxAttempts,
    retryLaterWindowMs,
    async state(eventId) {
      const row = await db.get<{ status: InboxStatus; attempts: number | bigint; received_at: number | bigint }>(
        "SELECT status, attempts, received_at FROM event_inbox WHERE consumer = ? AND event_id = ?",
        name,
        eventId,
      );
      return row && { status: row.status, attempts: Number(row.attempts), receivedAt: Number(row.received_at) };
    },
    handle,
  };
}
