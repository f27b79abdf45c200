import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { context, trace } from "@opentelemetry/api";
import { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";
import type { UserRegistered } from "../../gen/shop/users/v1/events_pb.js";
import { openDatabase } from "../store/sqlite.ts";
import type { Database } from "../store/sqlite.ts";
import { createLogger } from "../telemetry/logger.ts";
import { installTracing, tracer } from "../telemetry/tracing.ts";
import { RetryLater } from "./consumer.ts";
import type { EventHandler } from "./consumer.ts";
import { createEventRuntime } from "./event-runtime.ts";
import type { EventRuntime, ServiceEvents } from "./event-runtime.ts";
import { createInProcessBus } from "./in-process-bus.ts";
import type { InProcessBus } from "./in-process-bus.ts";
import { eventMigrations } from "./tables.ts";

const effectsTable = { version: 1, name: "effects", sql: "CREATE TABLE effects (event_id TEXT NOT NULL, email TEXT NOT NULL)" };

interface World {
  runtime: EventRuntime;
  bus: InProcessBus;
  producer: ServiceEvents;
  consumerDb: Database;
  producerDb: Database;
  handled: Array<{ email: string; traceId: string | undefined }>;
  close(): Promise<void>;
}

/** A producer and a consumer service, each with its own database, joined by the in-process bus. */
async function world(
  dir: string,
  handle: (event: UserRegistered) => Promise<void> | void,
  options: { hold?: boolean; maxAttempts?: number } = {},
): Promise<World> {
  const producerDb = await openDatabase({ path: join(dir, "producer.db"), migrations: eventMigrations });
  const consumerDb = await openDatabase({ path: join(dir, "consumer.db"), migrations: [effectsTable, ...eventMigrations] });
  const bus = createInProcessBus();
  const silent = createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });
  const runtime = createEventRuntime({
    bus,
    logger: silent,
    holdOutbox: options.hold ?? false,
    consumer: { maxAttempts: options.maxAttempts ?? 3, backoffMs: 10, retryLaterWindowMs: 5000 },
  });
  const producer = runtime.forService("producer", producerDb);
  const consumer = runtime.forService("consumer", consumerDb);
  const handled: World["handled"] = [];
  const handler: EventHandler<typeof UserRegisteredSchema> = async (event, ctx) => {
    await handle(event);
    await ctx.commit(async (tx) => {
      await tx.run("INSERT INTO effects (event_id, email) VALUES (?, ?)", ctx.id, event.email);
    });
    handled.push({ email: event.email, traceId: trace.getActiveSpan()?.spanContext().traceId });
  };
  consumer.on(UserRegisteredSchema, handler);
  runtime.start();
  return {
    runtime,
    bus,
    producer,
    consumerDb,
    producerDb,
    handled,
    async close() {
      await runtime.stop();
      await producerDb.close();
      await consumerDb.close();
    },
  };
}

function emitUser(w: World, email: string) {
  return w.producer.transaction((_tx, emit) => emit(UserRegisteredSchema, { userId: email, email }));
}

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const effects = async (w: World) => (await w.consumerDb.all<{ email: string }>("SELECT email FROM effects ORDER BY email")).map((r) => r.email);

describe("events: outbox, relay, in-process bus, consumers", () => {
  let dir: string;
  before(() => installTracing());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "shop-events-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("delivers a committed event once, in the trace of the code that emitted it", async () => {
    const w = await world(dir, () => {});
    try {
      const span = tracer().startSpan("test-root");
      await context.with(trace.setSpan(context.active(), span), () => emitUser(w, "a@example.com"));
      span.end();
      await until(() => w.handled.length === 1, "the event to be handled");
      expect(w.handled[0].traceId).to.equal(span.spanContext().traceId);
      expect(await effects(w)).to.deep.equal(["a@example.com"]);
    } finally {
      await w.close();
    }
  });

  it("never delivers an event whose transaction rolled back", async () => {
    const w = await world(dir, () => {});
    try {
      await w.producer
        .transaction(async (_tx, emit) => {
          await emit(UserRegisteredSchema, { userId: "x", email: "rolled-back@example.com" });
          throw new Error("the state change failed");
        })
        .catch(() => undefined);
      await emitUser(w, "after@example.com");
      await until(() => w.handled.length === 1, "the later event");
      expect(await effects(w)).to.deep.equal(["after@example.com"]);
    } finally {
      await w.close();
    }
  });

  it("drops a second publish of the same event: the effect happens once", async () => {
    const w = await world(dir, () => {});
    try {
      const id = await emitUser(w, "twice@example.com");
      await until(() => w.handled.length === 1, "the first delivery");
      const row = await w.producerDb.get<{ payload: Uint8Array; occurred_at: string }>("SELECT payload, occurred_at FROM event_outbox WHERE id = ?", id);
      await w.bus.publish([{ id, type: UserRegisteredSchema.typeName, payload: row!.payload, headers: {}, occurredAt: row!.occurred_at, source: "producer" }]);
      await emitUser(w, "z-marker@example.com");
      await until(() => w.handled.length === 2, "the marker event");
      expect(await effects(w)).to.deep.equal(["twice@example.com", "z-marker@example.com"]);
    } finally {
      await w.close();
    }
  });

  it("keeps an event committed before a crash and delivers it after the restart", async () => {
    const first = await world(dir, () => {}, { hold: true });
    await emitUser(first, "survivor@example.com");
    const unpublished = await first.producerDb.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL");
    expect(Number(unpublished?.n)).to.equal(1);
    await first.close();
    expect(first.handled).to.have.length(0);

    const second = await world(dir, () => {});
    try {
      await until(() => second.handled.length === 1, "delivery after the restart");
      expect(await effects(second)).to.deep.equal(["survivor@example.com"]);
    } finally {
      await second.close();
    }
  });

  it("moves an event that keeps failing to the dead letters after the bounded attempts, without blocking the ones behind it", async () => {
    let poisonAttempts = 0;
    const w = await world(
      dir,
      (event) => {
        if (event.email.startsWith("poison")) {
          poisonAttempts++;
          throw new Error("cannot handle this one");
        }
      },
      { maxAttempts: 3 },
    );
    try {
      await emitUser(w, "poison@example.com");
      await emitUser(w, "behind-1@example.com");
      await emitUser(w, "behind-2@example.com");
      await until(async () => (await w.consumerDb.get("SELECT 1 FROM event_dead_letters")) !== undefined, "the dead letter");
      const dead = await w.consumerDb.get<{ error: string; attempts: number; type: string }>("SELECT error, attempts, type FROM event_dead_letters");
      expect(dead).to.deep.include({ error: "cannot handle this one", type: "shop.users.v1.UserRegistered" });
      expect(Number(dead!.attempts)).to.equal(3);
      expect(poisonAttempts).to.equal(3);
      expect(await effects(w)).to.deep.equal(["behind-1@example.com", "behind-2@example.com"]);

      const listed = await w.runtime.admin.listDeadLetters({ consumer: "consumer", pageSize: 10 } as never, undefined as never);
      expect(listed.deadLetters!).to.have.length(1);
      expect(listed.deadLetters![0]).to.deep.include({ consumer: "consumer", error: "cannot handle this one", attempts: 3 });
      const backlog = await w.runtime.admin.getEventBacklog({} as never, undefined as never);
      expect(backlog.consumers).to.deep.include({ consumer: "consumer", pending: 0, dead: 1 });
    } finally {
      await w.close();
    }
  });

  it("puts a dead letter back in the queue on RetryDeadLetter", async () => {
    let healthy = false;
    const w = await world(
      dir,
      () => {
        if (!healthy) throw new Error("dependency down");
      },
      { maxAttempts: 2 },
    );
    try {
      const id = await emitUser(w, "retry-me@example.com");
      await until(async () => (await w.consumerDb.get("SELECT 1 FROM event_dead_letters")) !== undefined, "the dead letter");
      healthy = true;
      await w.runtime.admin.retryDeadLetter({ consumer: "consumer", eventId: id } as never, undefined as never);
      await until(() => w.handled.length === 1, "handling after the retry");
      expect(await w.consumerDb.get("SELECT 1 FROM event_dead_letters")).to.equal(undefined);
    } finally {
      await w.close();
    }
  });

  it("waits for a handler that says RetryLater without spending its attempts", async () => {
    let calls = 0;
    const w = await world(
      dir,
      () => {
        calls++;
        if (calls <= 3) throw new RetryLater("the order is not known yet");
      },
      { maxAttempts: 1 },
    );
    try {
      await emitUser(w, "patient@example.com");
      await until(() => w.handled.length === 1, "the handled event");
      expect(calls).to.equal(4);
      expect(await w.consumerDb.get("SELECT 1 FROM event_dead_letters")).to.equal(undefined);
    } finally {
      await w.close();
    }
  });

  it("dead-letters an event whose payload cannot be decoded at the first attempt", async () => {
    const w = await world(dir, () => {});
    try {
      const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
      await w.bus.publish([{ id: "garbage-1", type: UserRegisteredSchema.typeName, payload: garbage, headers: {}, occurredAt: new Date().toISOString(), source: "producer" }]);
      await until(async () => (await w.consumerDb.get("SELECT 1 FROM event_dead_letters")) !== undefined, "the dead letter");
      const dead = await w.consumerDb.get<{ error: string; attempts: number }>("SELECT error, attempts FROM event_dead_letters");
      expect(dead!.error).to.contain("cannot decode");
      expect(Number(dead!.attempts)).to.equal(1);
      // A valid payload for the same type is still handled.
      const ok = toBinary(UserRegisteredSchema, create(UserRegisteredSchema, { email: "fine@example.com" }));
      await w.bus.publish([{ id: "fine-1", type: UserRegisteredSchema.typeName, payload: ok, headers: {}, occurredAt: new Date().toISOString(), source: "producer" }]);
      await until(() => w.handled.length === 1, "the valid event");
    } finally {
      await w.close();
    }
  });
});
