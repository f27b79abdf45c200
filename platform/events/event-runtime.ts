// Wires the event machinery of one process: per service an outbox and a
// relay; per consuming service a consumer worker; one bus. Services see only
// ServiceEvents: a transaction with emit, and `on` to handle an event type.
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { redactForLog } from "../redaction.ts";
import type { Database, Queryable } from "../store/sqlite.ts";
import type { Logger } from "../telemetry/logger.ts";
import { createConsumer } from "./consumer.ts";
import type { Consumer, EventHandler, HandlerEntry } from "./consumer.ts";
import type { InProcessBus } from "./in-process-bus.ts";
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
  bus: InProcessBus;
  logger: Logger;
  /** Consumer tuning, mostly for tests. */
  consumer?: { maxAttempts?: number; backoffMs?: number; retryLaterWindowMs?: number; concurrency?: number };
  /**
   * Keep committed events in the outboxes: relays do not start. For
   * maintenance and crash drills. Default EVENT_RELAY_HOLD=1, else off.
   */
  holdOutbox?: boolean;
}

interface ServiceEntry {
  name: string;
  db: Database;
  outbox: Outbox;
  relay: OutboxRelay;
  handlers: Map<string, HandlerEntry>;
  consumer?: Consumer;
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
      for (const s of services) {
        const unpublished = await s.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL");
        sources.push({ source: s.name, unpublished: Number(unpublished?.n ?? 0) });
        if (s.consumer) {
          const counts = await s.db.all<{ status: string; n: number }>(
            "SELECT status, COUNT(*) AS n FROM event_inbox WHERE consumer = ? AND status IN ('pending', 'dead') GROUP BY status",
            s.name,
          );
          const of = (status: string) => Number(counts.find((c) => c.status === status)?.n ?? 0);
          consumers.push({ consumer: s.name, pending: of("pending"), dead: of("dead") });
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
      for (const s of services) {
        if (s.handlers.size === 0) continue;
        s.consumer = createConsumer({
          name: s.name,
          db: s.db,
          outbox: s.outbox,
          handlers: s.handlers,
          logger: logger.child({ consumer: s.name }),
          ...options.consumer,
        });
        bus.subscribe({ name: s.name, types: s.consumer.types, db: s.db, kick: () => s.consumer!.kick() });
      }
      for (const s of services) s.consumer?.start();
      if (options.holdOutbox ?? process.env.EVENT_RELAY_HOLD === "1") {
        logger.warn("EVENT_RELAY_HOLD is on: committed events stay in the outboxes until a restart without it");
        return;
      }
      for (const s of services) s.relay.start();
    },
    async stop() {
      for (const s of services) await s.relay.stop();
      for (const s of services) await s.consumer?.stop();
      await bus.close();
    },
  };
}
