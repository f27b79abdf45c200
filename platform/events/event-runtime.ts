// Wires the event machinery of one process: per service an outbox and a
// relay; per consuming service a consumer; one bus, in-process (embedded, the
// default) or JetStream (the mesh), chosen by which one is passed in.
// Services see only ServiceEvents: a transaction with emit, and `on` to
// handle an event type. Dead letters, their retry and the backlog live in each
// service's own database whichever the bus, so the admin RPCs are the same.
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { redactForLog } from "../redaction.ts";
import type { Database, Queryable } from "../store/sqlite.ts";
import type { Logger } from "../telemetry/logger.ts";
import { createInboxWorker } from "./consumer.ts";
import type { Consumer } from "./consumer.ts";
import { createEventHandling } from "./event-handling.ts";
import type { EventHandler, HandlerEntry } from "./event-handling.ts";
import type { InProcessBus } from "./in-process-bus.ts";
import type { JetStreamBus } from "./jetstream-bus.ts";
import { createOutbox } from "./outbox.ts";
import type { Emit, Outbox } from "./outbox.ts";
import { createOutboxRelay } from "./relay.ts";
import type { OutboxRelay } from "./relay.ts";

export interface ServiceEvents {
  /** One transaction of the service's database; events emitted in it leave only if it commits. */
  transaction<T>(fn: (tx: Queryable, emit: Emit) => Promise<T>): Promise<T>;
  /** Handles every event of this type; register during start(). */
  on<D extends DescMessage>(schema: D, handler: EventHandler<D>): void;
}

export interface EventRuntimeOptions {
  /**
   * createInProcessBus() delivers through each consumer's inbox table in this
   * process; createJetStreamBus({ servers }) through NATS JetStream. The
   * runtime closes it on stop().
   */
  bus: InProcessBus | JetStreamBus;
  logger: Logger;
  /** Consumer tuning, mostly for tests. */
  consumer?: EventConsumerTuning;
  /**
   * Keep committed events in the outboxes: relays do not start. For
   * maintenance and crash drills. Default EVENT_RELAY_HOLD=1, else off.
   */
  holdOutbox?: boolean;
}

export interface EventConsumerTuning {
  /** Attempts before an event becomes a dead letter. Default EVENT_MAX_ATTEMPTS, then 5. */
  maxAttempts?: number;
  /** First retry delay, doubling per attempt up to 5 s. Default 100 ms. */
  backoffMs?: number;
  /** How long RetryLater may postpone an event before it counts as a failure. Default 60 s. */
  retryLaterWindowMs?: number;
  /** Events handled at once: per service in-process, per service and event type on JetStream. Default 8. */
  concurrency?: number;
  /** JetStream only: how soon an unacknowledged event (its consumer died) is delivered again. Default EVENT_ACK_WAIT_MS, then 10 s. */
  ackWaitMs?: number;
  /** JetStream only: the consumers' max_deliver backstop. Default maxAttempts + RetryLater's deliveries + 10. */
  maxDeliver?: number;
}

interface ServiceEntry {
  name: string;
  db: Database;
  outbox: Outbox;
  relay: OutboxRelay;
  handlers: Map<string, HandlerEntry>;
  /** The inbox worker: the whole consumer in-process; with JetStream, dead letters put back. */
  consumer?: Consumer;
  /** The JetStream consumer, with that bus. */
  pulled?: Consumer;
}

export interface EventRuntime {
  forService(name: string, db: Database): ServiceEvents;
  /** Subscribes all consumers, then starts consumers and relays. */
  start(): void;
  stop(): Promise<void>;
  readonly admin: ServiceImpl<typeof EventAdminService>;
}

export function createEventRuntime(options: EventRuntimeOptions): EventRuntime {
  const { bus, logger } = options;
  const services: ServiceEntry[] = [];

  const admin: ServiceImpl<typeof EventAdminService> = {
    async listDeadLetters(req) {
      const limit = req.pageSize > 0 ? req.pageSize : 50;
      const out = [];
      for (const s of services) {
        if (req.consumer && req.consumer !== s.name) continue;
        const rows = await s.db.all<{ consumer: string; event_id: string; type: string; source: string; payload: Uint8Array; error: string; attempts: number; failed_at: string }>(
          "SELECT * FROM event_dead_letters WHERE consumer = ? ORDER BY failed_at DESC LIMIT ?",
          s.name,
          limit,
        );
        for (const r of rows) {
          const entry = s.handlers.get(r.type);
          let payloadJson = "";
          try {
            payloadJson = entry ? JSON.stringify(redactForLog(entry.schema, fromBinary(entry.schema, r.payload))) : "";
          } catch {
            payloadJson = "(undecodable payload)";
          }
          out.push({
            consumer: r.consumer,
            eventId: r.event_id,
            eventType: r.type,
            source: r.source,
            error: r.error,
            attempts: Number(r.attempts),
            failedAt: timestampFromDate(new Date(r.failed_at)),
            payloadJson,
          });
        }
      }
      return { deadLetters: out.slice(0, limit) };
    },
    async retryDeadLetter(req) {
      const s = services.find((x) => x.name === req.consumer && x.consumer);
      if (!s) throw new ConnectError(`no consumer ${req.consumer} in this process`, Code.NotFound);
      const moved = await s.db.transaction(async (tx) => {
        const changed = await tx.run(
          "UPDATE event_inbox SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE consumer = ? AND event_id = ? AND status = 'dead'",
          Date.now(),
          req.consumer,
          req.eventId,
        );
        if (changed > 0) await tx.run("DELETE FROM event_dead_letters WHERE consumer = ? AND event_id = ?", req.consumer, req.eventId);
        return changed;
      });
      if (moved === 0) throw new ConnectError(`no dead letter ${req.eventId} for ${req.consumer}`, Code.NotFound);
      s.consumer!.kick();
      return {};
    },
    async getEventBacklog() {
      const sources = [];
      const consumers = [];
      const unacknowledged = async (s: ServiceEntry) => {
        if (bus.kind !== "jetstream") return 0;
        try {
          return await bus.backlog(s.name, [...s.handlers.keys()]);
        } catch (err) {
          throw new ConnectError(`event backlog of ${s.name}: ${(err as Error).message}`, Code.Unavailable);
        }
      };
      // Every outbox first, then every inbox: an event moving from one
      // service to the next is then counted at least once, never missed.
      for (const s of services) {
        const unpublished = await s.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL");
        sources.push({ source: s.name, unpublished: Number(unpublished?.n ?? 0) });
      }
      for (const s of services) {
        if (s.consumer) {
          const counts = await s.db.all<{ status: string; n: number }>(
            "SELECT status, COUNT(*) AS n FROM event_inbox WHERE consumer = ? AND status IN ('pending', 'dead') GROUP BY status",
            s.name,
          );
          const of = (status: string) => Number(counts.find((c) => c.status === status)?.n ?? 0);
          consumers.push({ consumer: s.name, pending: of("pending") + (await unacknowledged(s)), dead: of("dead") });
        }
      }
      return { sources, consumers };
    },
  };

  return {
    admin,
    forService(name, db) {
      const outbox = createOutbox(db, name);
      const relay = createOutboxRelay({ db, bus, logger: logger.child({ relay: name }) });
      outbox.onCommit(() => relay.kick());
      const entry: ServiceEntry = { name, db, outbox, relay, handlers: new Map() };
      services.push(entry);
      return {
        transaction: (fn) => outbox.transaction(fn),
        on(schema, handler) {
          if (entry.consumer) throw new Error(`${name}: register event handlers before the runtime starts`);
          if (entry.handlers.has(schema.typeName)) throw new Error(`${name}: two handlers for ${schema.typeName}`);
          entry.handlers.set(schema.typeName, { schema, handle: handler as EventHandler });
        },
      };
    },
    start() {
      const tuning = options.consumer ?? {};
      for (const s of services) {
        if (s.handlers.size === 0) continue;
        const consumerLogger = logger.child({ consumer: s.name });
        const handling = createEventHandling({
          name: s.name,
          db: s.db,
          outbox: s.outbox,
          handlers: s.handlers,
          logger: consumerLogger,
          maxAttempts: tuning.maxAttempts,
          backoffMs: tuning.backoffMs,
          retryLaterWindowMs: tuning.retryLaterWindowMs,
        });
        const worker = createInboxWorker(handling, consumerLogger, { concurrency: tuning.concurrency });
        s.consumer = worker;
        if (bus.kind === "jetstream") {
          s.pulled = bus.consumer(handling, { concurrency: tuning.concurrency, ackWaitMs: tuning.ackWaitMs, maxDeliver: tuning.maxDeliver });
        } else {
          bus.subscribe({ name: s.name, types: worker.types, db: s.db, kick: () => worker.kick() });
        }
      }
      for (const s of services) {
        s.consumer?.start();
        s.pulled?.start();
      }
      if (options.holdOutbox ?? process.env.EVENT_RELAY_HOLD === "1") {
        logger.warn("EVENT_RELAY_HOLD is on: committed events stay in the outboxes until a restart without it");
        return;
      }
      for (const s of services) s.relay.start();
    },
    async stop() {
      for (const s of services) await s.relay.stop();
      for (const s of services) await s.pulled?.stop();
      for (const s of services) await s.consumer?.stop();
      await bus.close();
    },
  };
}
