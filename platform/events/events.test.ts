import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { context, trace } from "@opentelemetry/api";
import { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";
import type { UserRegistered } from "../../gen/shop/users/v1/events_pb.js";
import { getSharedNats, startTestNats } from "../../test/support/nats.ts";
import type { TestNats } from "../../test/support/nats.ts";
import { openDatabase } from "../store/sqlite.ts";
import type { Database } from "../store/sqlite.ts";
import { createLogger } from "../telemetry/logger.ts";
import { installTracing, tracer } from "../telemetry/tracing.ts";
import { RetryLater } from "./consumer.ts";
import type { EventHandler } from "./consumer.ts";
import type { EventBus } from "./event-record.ts";
import { eventBusFromEnv } from "./bus-from-env.ts";
import { createEventRuntime } from "./event-runtime.ts";
import type { EventRuntime, ServiceEvents } from "./event-runtime.ts";
import { createInProcessBus } from "./in-process-bus.ts";
import { createJetStreamBus } from "./jetstream-bus.ts";
import { eventMigrations } from "./tables.ts";

const effectsTable = { version: 1, name: "effects", sql: "CREATE TABLE effects (event_id TEXT NOT NULL, email TEXT NOT NULL)" };
const silent = () => createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });

/** Which bus a world runs on; for JetStream, the server and the stream of this test. */
type BusChoice = { kind: "in-process" } | { kind: "jetstream"; nats: TestNats; stream: string; duplicateWindowMs?: number };

interface WorldOptions {
  hold?: boolean;
  maxAttempts?: number;
  concurrency?: number;
  ackWaitMs?: number;
  maxDeliver?: number;
  /** Run on these databases instead of opening the files (a second runtime in the same process). */
  databases?: { producerDb: Database; consumerDb: Database };
}

interface World {
  runtime: EventRuntime;
  bus: EventBus;
  producer: ServiceEvents;
  consumerDb: Database;
  producerDb: Database;
  handled: Array<{ email: string; traceId: string | undefined }>;
  /** Stops the runtime (relays, consumers, bus), keeping the databases open. */
  stopRuntime(): Promise<void>;
  close(): Promise<void>;
}

/** A producer and a consumer service, each with its own database, joined by the chosen bus. */
async function world(
  dir: string,
  choice: BusChoice,
  handle: (event: UserRegistered) => Promise<void> | void,
  options: WorldOptions = {},
): Promise<World> {
  const producerDb = options.databases?.producerDb ?? (await openDatabase({ path: join(dir, "producer.db"), migrations: eventMigrations }));
  const consumerDb = options.databases?.consumerDb ?? (await openDatabase({ path: join(dir, "consumer.db"), migrations: [effectsTable, ...eventMigrations] }));
  const bus =
    choice.kind === "in-process"
      ? createInProcessBus()
      : createJetStreamBus({
          servers: choice.nats.url,
          logger: silent(),
          stream: choice.stream,
          subjectPrefix: `test.${choice.stream}`,
          duplicateWindowMs: choice.duplicateWindowMs,
          publishTimeoutMs: 1000,
          reconnectWaitMs: 100,
        });
  const runtime = createEventRuntime({
    bus,
    logger: silent(),
    holdOutbox: options.hold ?? false,
    consumer: { maxAttempts: options.maxAttempts ?? 3, backoffMs: 10, retryLaterWindowMs: 5000, concurrency: options.concurrency, ackWaitMs: options.ackWaitMs, maxDeliver: options.maxDeliver },
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
  let stopped: Promise<void> | undefined;
  const stopRuntime = () => (stopped ??= runtime.stop());
  return {
    runtime,
    bus,
    producer,
    consumerDb,
    producerDb,
    handled,
    stopRuntime,
    async close() {
      await stopRuntime();
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
const deadLetter = async (w: World) => (await w.consumerDb.get("SELECT 1 FROM event_dead_letters")) !== undefined;
const backlogOf = async (w: World) => (await w.runtime.admin.getEventBacklog({} as never, undefined as never)).consumers?.find((c) => c.consumer === "consumer");

/** Messages the stream holds, read over a connection of the test's own. */
async function storedMessages(nats: TestNats, stream: string): Promise<number> {
  const nc = await connect({ servers: nats.url });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

const buses: Array<{ title: string; choose: (nats: () => Promise<TestNats>) => Promise<BusChoice> }> = [
  { title: "the in-process bus", choose: async () => ({ kind: "in-process" }) },
  { title: "JetStream", choose: async (nats) => ({ kind: "jetstream", nats: await nats(), stream: `T_${randomUUID().slice(0, 8)}` }) },
];

for (const { title, choose } of buses) {
  describe(`events over ${title}: outbox, relay, consumers`, () => {
    let dir: string;
    let bus: BusChoice;
    before(() => installTracing());
    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), "shop-events-"));
      bus = await choose(getSharedNats);
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("delivers a committed event once, in the trace of the code that emitted it", async () => {
      const w = await world(dir, bus, () => {});
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
      const w = await world(dir, bus, () => {});
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
      const w = await world(dir, bus, () => {});
      try {
        const id = await emitUser(w, "twice@example.com");
        await until(() => w.handled.length === 1, "the first delivery");
        const row = await w.producerDb.get<{ payload: Uint8Array; occurred_at: string }>("SELECT payload, occurred_at FROM event_outbox WHERE id = ?", id);
        await w.bus.publish([{ id, type: UserRegisteredSchema.typeName, payload: row!.payload, headers: {}, occurredAt: row!.occurred_at, source: "producer" }]);
        await emitUser(w, "z-marker@example.com");
        await until(() => w.handled.length === 2, "the marker event");
        expect(await effects(w)).to.deep.equal(["twice@example.com", "z-marker@example.com"]);
        // JetStream dropped it on arrival: the message id was in the duplicate window.
        if (bus.kind === "jetstream") expect(await storedMessages(bus.nats, bus.stream)).to.equal(2);
      } finally {
        await w.close();
      }
    });

    it("keeps an event committed before a crash and delivers it after the restart", async () => {
      const first = await world(dir, bus, () => {}, { hold: true });
      await emitUser(first, "survivor@example.com");
      const unpublished = await first.producerDb.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL");
      expect(Number(unpublished?.n)).to.equal(1);
      await first.close();
      expect(first.handled).to.have.length(0);

      const second = await world(dir, bus, () => {});
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
        bus,
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
        await until(() => deadLetter(w), "the dead letter");
        const dead = await w.consumerDb.get<{ error: string; attempts: number; type: string }>("SELECT error, attempts, type FROM event_dead_letters");
        expect(dead).to.deep.include({ error: "cannot handle this one", type: "shop.users.v1.UserRegistered" });
        expect(Number(dead!.attempts)).to.equal(3);
        expect(poisonAttempts).to.equal(3);
        await until(() => w.handled.length === 2, "the events behind it");
        expect(await effects(w)).to.deep.equal(["behind-1@example.com", "behind-2@example.com"]);

        const listed = await w.runtime.admin.listDeadLetters({ consumer: "consumer", pageSize: 10 } as never, undefined as never);
        expect(listed.deadLetters!).to.have.length(1);
        expect(listed.deadLetters![0]).to.deep.include({ consumer: "consumer", error: "cannot handle this one", attempts: 3 });
        // On JetStream the term of the poison event reaches the server just after its dead letter is written.
        await until(async () => (await backlogOf(w))?.pending === 0, "an empty backlog");
        expect(await backlogOf(w)).to.deep.include({ consumer: "consumer", pending: 0, dead: 1 });
      } finally {
        await w.close();
      }
    });

    it("puts a dead letter back in the queue on RetryDeadLetter", async () => {
      let healthy = false;
      const w = await world(
        dir,
        bus,
        () => {
          if (!healthy) throw new Error("dependency down");
        },
        { maxAttempts: 2 },
      );
      try {
        const id = await emitUser(w, "retry-me@example.com");
        await until(() => deadLetter(w), "the dead letter");
        healthy = true;
        await w.runtime.admin.retryDeadLetter({ consumer: "consumer", eventId: id } as never, undefined as never);
        await until(() => w.handled.length === 1, "handling after the retry");
        expect(await deadLetter(w)).to.equal(false);
        expect(await effects(w)).to.deep.equal(["retry-me@example.com"]);
      } finally {
        await w.close();
      }
    });

    it("waits for a handler that says RetryLater without spending its attempts", async () => {
      let calls = 0;
      const w = await world(
        dir,
        bus,
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
        expect(await deadLetter(w)).to.equal(false);
      } finally {
        await w.close();
      }
    });

    it("dead-letters an event whose payload cannot be decoded at the first attempt", async () => {
      const w = await world(dir, bus, () => {});
      try {
        const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
        await w.bus.publish([{ id: "garbage-1", type: UserRegisteredSchema.typeName, payload: garbage, headers: {}, occurredAt: new Date().toISOString(), source: "producer" }]);
        await until(() => deadLetter(w), "the dead letter");
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
}

describe("eventBusFromEnv", () => {
  it("uses the in-process bus unless BUS says nats, and rejects any other bus", async () => {
    expect(eventBusFromEnv({}, silent()).kind).to.equal("in-process");
    expect(eventBusFromEnv({ BUS: "in-process" }, silent()).kind).to.equal("in-process");
    const bus = eventBusFromEnv({ BUS: "nats", NATS_URL: (await getSharedNats()).url, EVENT_STREAM: "FROM_ENV" }, silent());
    try {
      expect(bus).to.deep.include({ kind: "jetstream", stream: "FROM_ENV" });
    } finally {
      await bus.close();
    }
    expect(() => eventBusFromEnv({ BUS: "kafka" }, silent())).to.throw('BUS=kafka: expected "in-process" or "nats"');
  });
});

describe("events over JetStream: server restarts, consumer crashes, duplicates", () => {
  let dir: string;
  let stream: string;
  before(() => installTracing());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "shop-events-"));
    stream = `T_${randomUUID().slice(0, 8)}`;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Each effect of the emails exactly once. */
  async function expectOnceEach(w: World, emails: readonly string[]) {
    const rows = await w.consumerDb.all<{ email: string; n: number }>("SELECT email, COUNT(*) AS n FROM effects GROUP BY email ORDER BY email");
    expect(rows.map((r) => r.email)).to.deep.equal([...emails].sort());
    expect(rows.filter((r) => Number(r.n) !== 1)).to.deep.equal([]);
  }

  it("lets the inbox drop a second publish the duplicate window no longer catches", async () => {
    const nats = await getSharedNats();
    const w = await world(dir, { kind: "jetstream", nats, stream, duplicateWindowMs: 100 }, () => {});
    try {
      const id = await emitUser(w, "late-twin@example.com");
      await until(() => w.handled.length === 1, "the first delivery");
      await new Promise((r) => setTimeout(r, 300)); // past the 100 ms duplicate window
      const row = await w.producerDb.get<{ payload: Uint8Array; occurred_at: string }>("SELECT payload, occurred_at FROM event_outbox WHERE id = ?", id);
      await w.bus.publish([{ id, type: UserRegisteredSchema.typeName, payload: row!.payload, headers: {}, occurredAt: row!.occurred_at, source: "producer" }]);
      expect(await storedMessages(nats, stream)).to.equal(2);
      await until(async () => (await backlogOf(w))?.pending === 0, "the twin to be acknowledged");
      expect(w.handled).to.have.length(1);
      await expectOnceEach(w, ["late-twin@example.com"]);
    } finally {
      await w.close();
    }
  });

  it("delivers events committed while nats-server is down once it is back: the relay retries", async () => {
    const nats = await startTestNats();
    const w = await world(dir, { kind: "jetstream", nats, stream }, () => {});
    try {
      await emitUser(w, "before@example.com");
      await until(() => w.handled.length === 1, "the event before the outage");
      await nats.stop();
      const during = ["during-1@example.com", "during-2@example.com", "during-3@example.com"];
      for (const email of during) await emitUser(w, email);
      await new Promise((r) => setTimeout(r, 500));
      const unpublished = await w.producerDb.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL");
      expect(Number(unpublished?.n)).to.equal(3);
      await nats.start();
      await until(() => w.handled.length === 4, "the events committed during the outage", 15_000);
      await expectOnceEach(w, ["before@example.com", ...during]);
    } finally {
      await w.close();
      await nats.dispose();
    }
  });

  it("dead-letters an event at JetStream's last delivery, even one that asked to be retried later", async () => {
    const nats = await getSharedNats();
    let calls = 0;
    const w = await world(
      dir,
      { kind: "jetstream", nats, stream },
      (event) => {
        if (!event.email.startsWith("forever")) return;
        calls++;
        throw new RetryLater("waiting for something that never comes");
      },
      { maxAttempts: 5, maxDeliver: 3 },
    );
    try {
      await emitUser(w, "forever@example.com");
      await emitUser(w, "behind@example.com");
      await until(() => deadLetter(w), "the dead letter");
      const dead = await w.consumerDb.get<{ error: string; attempts: number }>("SELECT error, attempts FROM event_dead_letters");
      expect(dead).to.deep.include({ error: "waiting for something that never comes" });
      expect(calls).to.equal(3);
      await until(() => w.handled.length === 1, "the event behind it");
      await until(async () => (await backlogOf(w))?.pending === 0, "an empty backlog");
    } finally {
      await w.close();
    }
  });

  it("starts while nats-server is down and catches up once it is up", async () => {
    const nats = await startTestNats();
    await nats.stop();
    const w = await world(dir, { kind: "jetstream", nats, stream }, () => {});
    try {
      await emitUser(w, "early@example.com");
      await new Promise((r) => setTimeout(r, 300));
      await nats.start();
      await until(() => w.handled.length === 1, "the event committed before the server was up", 15_000);
      await expectOnceEach(w, ["early@example.com"]);
    } finally {
      await w.close();
      await nats.dispose();
    }
  });

  it("loses and repeats nothing when nats-server restarts while events flow", async () => {
    const nats = await startTestNats();
    const w = await world(dir, { kind: "jetstream", nats, stream }, () => {});
    const emails = Array.from({ length: 300 }, (_, i) => `flow-${String(i).padStart(3, "0")}@example.com`);
    try {
      const emitting = (async () => {
        for (const [i, email] of emails.entries()) {
          await emitUser(w, email);
          if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await until(() => w.handled.length >= 50, "the flow to start", 10_000);
      await nats.restart();
      await until(() => w.handled.length >= 150, "the flow after the first restart", 15_000);
      await nats.restart();
      await emitting;
      await until(() => w.handled.length >= emails.length, "every event", 20_000);
      await expectOnceEach(w, emails);
    } finally {
      await w.close();
      await nats.dispose();
    }
  });

  it("finishes a batch after its consumer stopped in the middle of it, each effect once", async () => {
    const nats = await getSharedNats();
    const emails = Array.from({ length: 24 }, (_, i) => `batch-${String(i).padStart(2, "0")}@example.com`);
    const slow = () => new Promise<void>((r) => setTimeout(r, 50));
    const first = await world(dir, { kind: "jetstream", nats, stream }, slow, { concurrency: 4 });
    for (const email of emails) await emitUser(first, email);
    await until(() => first.handled.length >= 4, "the first events of the batch");
    await first.stopRuntime();
    expect(first.handled.length).to.be.lessThan(emails.length);

    const second = await world(dir, { kind: "jetstream", nats, stream }, slow, { concurrency: 4, databases: first });
    try {
      await until(async () => (await effects(second)).length >= emails.length, "the rest of the batch", 15_000);
      await expectOnceEach(second, emails);
      await until(async () => (await backlogOf(second))?.pending === 0, "an empty backlog");
    } finally {
      await second.close();
    }
  });

  it("redelivers the events a crashed consumer held, after the ack wait, each effect once", async () => {
    const nats = await getSharedNats();
    const emails = Array.from({ length: 12 }, (_, i) => `crash-${String(i).padStart(2, "0")}@example.com`);
    // The first consumer hangs in its handlers like a process that froze, then "dies":
    // its connection goes away without acknowledging anything it held.
    let release: (err: Error) => void = () => {};
    const hung = new Promise<void>((_, reject) => (release = reject));
    hung.catch(() => undefined);
    let entered = 0;
    const first = await world(
      dir,
      { kind: "jetstream", nats, stream },
      async () => {
        entered++;
        await hung;
      },
      { concurrency: 4, ackWaitMs: 1000 },
    );
    for (const email of emails) await emitUser(first, email);
    await until(() => entered === 4, "four events held by the frozen consumer");
    await first.bus.close();

    const second = await world(dir, { kind: "jetstream", nats, stream }, () => {}, { concurrency: 4, ackWaitMs: 1000, databases: first });
    try {
      await until(async () => (await effects(second)).length >= emails.length, "every event, the held ones after the ack wait", 15_000);
      // The frozen handlers wake up and fail: too late to change what the second consumer did.
      release(new Error("the process was killed"));
      await first.stopRuntime();
      await expectOnceEach(second, emails);
      const failures = await second.consumerDb.get<{ n: number }>("SELECT COUNT(*) AS n FROM event_inbox WHERE status <> 'handled'");
      expect(Number(failures?.n)).to.equal(0);
    } finally {
      release(new Error("the process was killed"));
      await first.stopRuntime();
      await second.close();
    }
  });
});
