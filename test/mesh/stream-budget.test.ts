// Through the mesh: streams cannot starve calls. 500 WatchOrder streams held
// open through the edge by signed-in users, plus a flood of what anyone may
// send without signing in (Health/Watch, reflection streams, WatchOrder with
// no token), while CreateOrder and GetOrder keep succeeding at a steady rate.
// Before the edge gave streams budgets of their own (envoy/policy.ts), 256
// open streams used up the orders cluster's max_requests and every other
// orders call failed with UNAVAILABLE "overflow".
//
// Orders stay PENDING (so their watches stay open) because the payment
// provider is made to take ten minutes, and the saga's timeout is longer.
// Everything is on loopback; every stream, flood and load is bounded in count
// and time.
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../../gen/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { EDGE_HTTP2, PUBLIC_STREAM_LIMITS, STREAM_LIMITS } from "../../envoy/policy.ts";
import { readStats } from "../mesh-drills/drill-mesh.ts";
import type { Stats } from "../mesh-drills/drill-mesh.ts";
import { describeFailures, driveSteadily } from "../mesh-drills/steady-load.ts";
import { startLocalMesh } from "./local-mesh.ts";
import type { LocalMesh } from "./local-mesh.ts";

/** Signed-in users, each watching its own order this many times: 500 streams. */
const USERS = 5;
const WATCHES_PER_USER = 100;
const WATCHES = USERS * WATCHES_PER_USER;
/** Streams per client connection: the edge lets one connection hold EDGE_HTTP2.maxConcurrentStreams. */
const STREAMS_PER_CONNECTION = 50;
/** Unauthenticated Health/Watch calls, FLOOD_CONCURRENCY at a time on each of FLOOD_CONNECTIONS connections. */
const HEALTH_WATCH_FLOOD = 4000;
const FLOOD_CONNECTIONS = 4;
const FLOOD_CONCURRENCY = 25;
/** Reflection streams held open without signing in: more than their budget at the edge. */
const REFLECTION_STREAMS = PUBLIC_STREAM_LIMITS.maxRequests + 44;
/** WatchOrder without a token: each must fail UNAUTHENTICATED at once and hold nothing. */
const ANONYMOUS_WATCHES = 200;
/** The unary load: CreateOrder and GetOrder alternately. */
const RATE_PER_SECOND = 20;
const LOAD_MS = 10_000;

type Outcome = { held: true; ms: number } | { held: false; code: Code; message: string; ms: number };

interface HeldStream {
  /** The first message (held), or the error the stream failed with before one. */
  readonly first: Promise<Outcome>;
  /** How the stream ended, once it has: undefined while it is open; the code it ended with afterwards (Canceled when closed here). */
  ended(): Code | "ok" | undefined;
  readonly done: Promise<void>;
  close(): void;
}

/** Opens a stream with open(signal) and reads it until it ends or close() is called. */
function hold(open: (signal: AbortSignal) => AsyncIterable<unknown>): HeldStream {
  const abort = new AbortController();
  const started = performance.now();
  let resolveFirst!: (o: Outcome) => void;
  const first = new Promise<Outcome>((r) => (resolveFirst = r));
  let end: Code | "ok" | undefined;
  const done = (async () => {
    try {
      for await (const _ of open(abort.signal)) resolveFirst({ held: true, ms: performance.now() - started });
      end = "ok";
      resolveFirst({ held: false, code: Code.Unknown, message: "ended without a message", ms: performance.now() - started });
    } catch (err) {
      const e = ConnectError.from(err);
      end = e.code;
      resolveFirst({ held: false, code: e.code, message: e.rawMessage, ms: performance.now() - started });
    }
  })();
  return { first, ended: () => end, done, close: () => abort.abort() };
}

/**
 * Opens count streams, batch at a time, each batch once the one before has
 * its first answers: watchers arrive over time, not in one burst. (At a
 * proxy that has no connection to a replica yet, max_pending_requests (64)
 * streams may wait for one; a burst of hundreds at a cold cluster would be
 * turned away past that.)
 */
async function openInBatches(count: number, batch: number, open: (n: number) => HeldStream): Promise<HeldStream[]> {
  const out: HeldStream[] = [];
  for (let from = 0; from < count; from += batch) {
    const some = Array.from({ length: Math.min(batch, count - from) }, (_, i) => open(from + i));
    out.push(...some);
    await Promise.all(some.map((s) => s.first));
  }
  return out;
}

/** A client on a connection of its own (connect-node keeps one HTTP/2 session per transport). */
function onNewConnection<S extends DescService>(mesh: LocalMesh, service: S): Client<S> {
  return createClient(service, createGrpcTransport({ baseUrl: mesh.edgeUrl }));
}

/** A request stream that sends one message, then stays open until the signal fires. */
async function* oneThenWait(message: MessageInitShape<typeof ServerReflectionRequestSchema>, signal: AbortSignal): AsyncIterable<MessageInitShape<typeof ServerReflectionRequestSchema>> {
  yield message;
  await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
}

const codeCounts = (codes: ReadonlyArray<Code | string>) => {
  const out: Record<string, number> = {};
  for (const c of codes) {
    const name = typeof c === "number" ? Code[c] : c;
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
};

describe("through the mesh: streams cannot starve calls", function () {
  this.timeout(180_000);
  let mesh: LocalMesh;
  let edgeStats: (prefix: string) => Promise<Stats>;

  before(async function () {
    mesh = await startLocalMesh({
      env: {
        // Every order stays PENDING: the provider answers after ten minutes
        // (the guard waits as long), and the saga's timeout is longer still.
        PAYMENT_PROVIDER_LATENCY_MS: "600000",
        PAYMENT_PROVIDER_TIMEOUT_MS: "600000",
        ORDER_SAGA_TIMEOUT_MS: "900000",
        LOG_LEVEL: "warn",
      },
    });
    edgeStats = (prefix) => readStats(mesh.state.edge.admin, prefix);
  });
  after(async function () {
    this.timeout(90_000);
    await mesh?.dispose();
  });

  it(`keeps CreateOrder and GetOrder succeeding while ${WATCHES} WatchOrder streams are open and anyone floods Health/Watch, reflection and WatchOrder without a token`, async function () {
    const users = onNewConnection(mesh, UserService);
    const orders = onNewConnection(mesh, OrderService);

    // Signed-in users with one PENDING order each.
    const shoppers: Array<{ auth: { headers: { authorization: string } }; orderId: string }> = [];
    for (let u = 0; u < USERS; u++) {
      const email = `streams-${u}-${randomUUID().slice(0, 8)}@example.com`;
      await users.signUp({ email, password: "a-long-password", displayName: `Streams ${u}` });
      const { token } = await users.login({ email, password: "a-long-password" });
      const auth = { headers: { authorization: `Bearer ${token}` } };
      const { order } = await orders.createOrder({ idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
      expect(order?.status).to.equal(OrderStatus.PENDING);
      shoppers.push({ auth, orderId: order!.orderId });
    }

    const before = await edgeStats("cluster.orders");
    const streams: HeldStream[] = [];
    const unauthenticated: HeldStream[] = [];
    try {
      // 500 WatchOrder streams, STREAMS_PER_CONNECTION per client connection.
      const watchClients = Array.from({ length: Math.ceil(WATCHES / STREAMS_PER_CONNECTION) }, () => onNewConnection(mesh, OrderService));
      streams.push(
        ...(await openInBatches(WATCHES, STREAMS_PER_CONNECTION, (n) => {
          const client = watchClients[Math.floor(n / STREAMS_PER_CONNECTION)];
          const shopper = shoppers[Math.floor(n / WATCHES_PER_USER)];
          return hold((signal) => client.watchOrder({ orderId: shopper.orderId }, { ...shopper.auth, signal, timeoutMs: 120_000 }));
        })),
      );
      const firsts = await Promise.all(streams.map((s) => s.first));
      const notHeld = firsts.filter((f): f is Extract<Outcome, { held: false }> => !f.held);
      expect(notHeld.map((f) => `${Code[f.code]}: ${f.message}`).slice(0, 5), `${notHeld.length} of ${WATCHES} watches not held`).to.deep.equal([]);
      const opened = await edgeStats("cluster.orders");
      expect(opened.get("cluster.orders-streams.upstream_rq_active"), "streams open at the edge").to.equal(WATCHES);
      // More than the unary budget (256) ever was, and within their own.
      expect(WATCHES).to.be.greaterThan(256).and.at.most(STREAM_LIMITS.maxRequests);

      // What anyone may do without signing in, all at once, beside the unary load.
      const reflectionClients = Array.from({ length: Math.ceil(REFLECTION_STREAMS / STREAMS_PER_CONNECTION) }, () => onNewConnection(mesh, ServerReflection));
      const reflectionStarted = openInBatches(REFLECTION_STREAMS, STREAMS_PER_CONNECTION, (n) => {
        const client = reflectionClients[Math.floor(n / STREAMS_PER_CONNECTION)];
        const s = hold((signal) => client.serverReflectionInfo(oneThenWait({ messageRequest: { case: "listServices", value: "" } }, signal), { signal, timeoutMs: 120_000 }));
        unauthenticated.push(s);
        return s;
      });
      const anonymousWatch = onNewConnection(mesh, OrderService);
      const anonymousStarted = openInBatches(ANONYMOUS_WATCHES, STREAMS_PER_CONNECTION, (n) => {
        const s = hold((signal) => anonymousWatch.watchOrder({ orderId: shoppers[n % USERS].orderId }, { signal, timeoutMs: 10_000 }));
        unauthenticated.push(s);
        return s;
      });

      const floodCodes: Code[] = [];
      const floodMessages = new Set<string>();
      const floodEnd = Date.now() + LOAD_MS + 5000;
      let floodSent = 0;
      const flood = Promise.all(
        Array.from({ length: FLOOD_CONNECTIONS }, async () => {
          const health = onNewConnection(mesh, Health);
          await Promise.all(
            Array.from({ length: FLOOD_CONCURRENCY }, async (_, lane) => {
              while (floodSent < HEALTH_WATCH_FLOOD && Date.now() < floodEnd) {
                floodSent++;
                // Half name a service, as a watcher of orders would; half name none.
                const headers = lane % 2 === 0 ? { "x-shop-service": "orders" } : undefined;
                const s = hold((signal) => health.watch({ service: "shop.orders.v1.OrderService" }, { headers, signal, timeoutMs: 10_000 }));
                const first = await s.first;
                s.close();
                await s.done;
                floodCodes.push(first.held ? Code.Unknown : first.code);
                if (!first.held) floodMessages.add(first.message);
              }
            }),
          );
        }),
      );

      // GetOrder reads the order created last, as its owner.
      let last = shoppers[0];
      const load = await driveSteadily({
        ratePerSecond: RATE_PER_SECOND,
        durationMs: LOAD_MS,
        async call(n) {
          const shopper = shoppers[n % USERS];
          if (n % 2 === 0) {
            const { order } = await orders.createOrder({ idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, shopper.auth);
            last = { auth: shopper.auth, orderId: order!.orderId };
            return `created ${order!.orderId}`;
          }
          const { order } = await orders.getOrder({ orderId: last.orderId }, last.auth);
          return `got ${order!.orderId}`;
        },
      });
      await flood;
      const reflection = await reflectionStarted;
      const anonymous = await anonymousStarted;
      const reflectionFirsts = await Promise.all(reflection.map((s) => s.first));
      const anonymousFirsts = await Promise.all(anonymous.map((s) => s.first));
      const during = await edgeStats("cluster.");

      // The figures.
      const created = load.outcomes.filter((o) => o.n % 2 === 0);
      const got = load.outcomes.filter((o) => o.n % 2 === 1);
      const stillOpen = streams.filter((s) => s.ended() === undefined).length;
      const reflectionHeld = reflectionFirsts.filter((f) => f.held).length;
      const figures = {
        watchOrderStreamsHeld: stillOpen,
        createOrder: { ok: created.filter((o) => o.code === 0).length, failed: created.filter((o) => o.code !== 0).length },
        getOrder: { ok: got.filter((o) => o.code === 0).length, failed: got.filter((o) => o.code !== 0).length },
        unaryMs: (() => {
          const ms = load.outcomes.map((o) => o.elapsedMs).sort((a, b) => a - b);
          return { p50: Math.round(ms[Math.floor(ms.length * 0.5)]), p99: Math.round(ms[Math.floor(ms.length * 0.99)]), max: Math.round(ms[ms.length - 1]) };
        })(),
        healthWatchFlood: codeCounts(floodCodes),
        reflectionStreams: { held: reflectionHeld, refused: codeCounts(reflectionFirsts.filter((f) => !f.held).map((f) => (f.held ? "held" : f.code))) },
        watchOrderWithoutToken: codeCounts(anonymousFirsts.map((f) => (f.held ? "held" : f.code))),
        edge: {
          ordersRqActiveOverflow: during.get("cluster.orders.upstream_rq_active_overflow") - before.get("cluster.orders.upstream_rq_active_overflow"),
          ordersStreamsRqActive: during.get("cluster.orders-streams.upstream_rq_active"),
          reflectionPublicStreamsOverflow: during.get("cluster.reflection-public-streams.upstream_rq_active_overflow"),
        },
      };
      process.stdout.write(`      figures: ${JSON.stringify(figures)}\n`);

      // Every unary call succeeded, none turned away by a circuit breaker.
      expect(load.outcomes.filter((o) => o.code !== 0), describeFailures(load.outcomes)).to.deep.equal([]);
      expect(load.outcomes).to.have.length((RATE_PER_SECOND * LOAD_MS) / 1000);
      expect(figures.edge.ordersRqActiveOverflow, "orders calls turned away by the edge's circuit breaker").to.equal(0);
      expect(during.get("cluster.orders.upstream_rq_pending_overflow") - before.get("cluster.orders.upstream_rq_pending_overflow")).to.equal(0);
      // Every watch is still open: the flood took nothing from them.
      expect(stillOpen, "WatchOrder streams still open").to.equal(WATCHES);
      expect(figures.edge.ordersStreamsRqActive, "orders-streams open at the edge").to.be.at.least(WATCHES);
      // Health/Watch is answered by the edge itself, at once.
      expect(floodCodes).to.have.length(HEALTH_WATCH_FLOOD);
      expect(figures.healthWatchFlood).to.deep.equal({ Unimplemented: HEALTH_WATCH_FLOOD });
      expect([...floodMessages]).to.deep.equal(["grpc.health.v1.Health/Watch is not offered at the edge: ask grpc.health.v1.Health/Check with the x-shop-service header"]);
      // Reflection streams have a budget of their own: its limit held, the rest refused with UNAVAILABLE.
      expect(reflectionHeld, "reflection streams held").to.equal(PUBLIC_STREAM_LIMITS.maxRequests);
      expect(figures.reflectionStreams.refused).to.deep.equal({ Unavailable: REFLECTION_STREAMS - PUBLIC_STREAM_LIMITS.maxRequests });
      // WatchOrder without a token holds nothing.
      expect(figures.watchOrderWithoutToken).to.deep.equal({ Unauthenticated: ANONYMOUS_WATCHES });
      // The per-connection bound the edge tells every client.
      expect(STREAMS_PER_CONNECTION).to.be.at.most(EDGE_HTTP2.maxConcurrentStreams);
    } finally {
      for (const s of [...streams, ...unauthenticated]) s.close();
      await Promise.all([...streams, ...unauthenticated].map((s) => s.done));
    }
    // The slots come back once the streams are gone.
    const end = Date.now() + 10_000;
    let active = -1;
    while (Date.now() < end) {
      active = (await edgeStats("cluster.orders-streams.")).get("cluster.orders-streams.upstream_rq_active");
      if (active === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(active, "orders-streams still open at the edge after closing every watch").to.equal(0);
  });
});
