// Orders per second through the whole saga: every service in this process,
// the simulated payment provider at its default latency. Not a test.
//   make bench-saga                       SQLite files in a temporary folder, in-process events
//   make bench-saga STORE=postgres BUS=nats   throwaway PostgreSQL and nats-server, pool DATABASE_POOL_SIZE (10)
//   EVENT_RELAY_HOLD=1 measures CreateOrder alone (events stay in the outbox)
//   ORDERS (default 1000) orders from CUSTOMERS (default 20) customers,
//   at most CONCURRENCY (default 50) CreateOrder calls in flight.
// Besides throughput it reports the delay from an event's commit (outbox) to
// its handling by a consumer, from the consumers' own inbox records.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger, createTokenAuthority, openServiceDatabase } from "@shop/platform";
import { getSharedNats } from "../test/support/nats.ts";
import { getSharedPostgres } from "../test/support/postgres.ts";
import { OrderService, OrderStatus } from "../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../gen/shop/users/v1/users_pb.js";
import { allServices } from "../runner/services.ts";
import { startShop } from "../runner/shop.ts";

const ORDERS = Number(process.env.ORDERS ?? 1000);
const CUSTOMERS = Number(process.env.CUSTOMERS ?? 20);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const dataDir = mkdtempSync(join(tmpdir(), "shop-bench-"));
const backendEnv: Record<string, string> = {};
if (process.env.STORE === "postgres" && !process.env.ORDERS_DATABASE_URL) {
  Object.assign(backendEnv, (await (await getSharedPostgres()).createDatabases(allServices.map((m) => m.name))).env);
}
if (process.env.BUS === "nats" && !process.env.NATS_URL) backendEnv.NATS_URL = (await getSharedNats()).url;
const env: NodeJS.ProcessEnv = { ...process.env, ...backendEnv, ORDER_SAGA_TIMEOUT_MS: "120000" };
const shop = await startShop({
  modules: allServices,
  port: 0,
  host: "127.0.0.1",
  dataDir,
  logger: createLogger({ level: "warn", destination: new Writable({ write: (_c, _e, done) => done() }) }),
  tokens: createTokenAuthority({ allowDevelopmentKeys: true }),
  env,
});
const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${shop.port}` });
const users = createClient(UserService, transport);
const orders = createClient(OrderService, transport);

try {
  const auths: Array<{ headers: { authorization: string } }> = [];
  for (let i = 0; i < CUSTOMERS; i++) {
    const email = `bench-${i}@example.com`;
    await users.signUp({ email, password: "bench-password", displayName: `b${i}` });
    const { token } = await users.login({ email, password: "bench-password" });
    auths.push({ headers: { authorization: `Bearer ${token}` } });
  }
  // Items with deep stock, so every order can be confirmed.
  const skus = ["espresso-beans-1kg", "filter-beans-500g", "latte-mug", "paper-filters-100", "descaler"];
  const latencies: number[] = [];
  const placed: Array<{ id: string; auth: (typeof auths)[number] }> = [];
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < ORDERS) {
        const i = next++;
        const auth = auths[i % CUSTOMERS];
        const t0 = performance.now();
        const { order } = await orders.createOrder({ idempotencyKey: `bench-${i}`, items: [{ sku: skus[i % skus.length], quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
        latencies.push(performance.now() - t0);
        placed.push({ id: order!.orderId, auth });
      }
    }),
  );
  const createdAt = performance.now();
  if (env.EVENT_RELAY_HOLD === "1") {
    // CreateOrder alone: its events stay in the outbox, no saga runs behind it.
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
    const store = env.STORE === "postgres" ? `PostgreSQL, pool ${env.DATABASE_POOL_SIZE ?? 10}` : "SQLite";
    console.log(`CreateOrder alone (EVENT_RELAY_HOLD=1, ${store}): ${ORDERS} orders, ${CONCURRENCY} in flight: ${(ORDERS / ((createdAt - started) / 1000)).toFixed(0)} req/s, p50 ${q(50)} ms, p99 ${q(99)} ms`);
    process.exit(0);
  }
  // Wait until every order is final, polling each customer's list (bounded).
  const deadline = Date.now() + 300_000;
  let final = 0;
  let confirmed = 0;
  while (Date.now() < deadline) {
    final = 0;
    confirmed = 0;
    for (const auth of auths) {
      let token = "";
      do {
        const page = await orders.listOrders({ pageSize: 100, pageToken: token }, auth);
        for (const o of page.orders) {
          if (o.status === OrderStatus.CONFIRMED) confirmed++;
          if (o.status !== OrderStatus.PENDING) final++;
        }
        token = page.nextPageToken;
      } while (token);
    }
    if (final >= ORDERS) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const doneAt = performance.now();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
  const store = env.STORE === "postgres" ? `PostgreSQL, pool ${env.DATABASE_POOL_SIZE ?? 10}` : "SQLite";
  const bus = env.BUS === "nats" ? "JetStream" : "in-process events";
  console.log(`orders: ${ORDERS} from ${CUSTOMERS} customers, ${CONCURRENCY} in flight (embedded, ${store}, ${bus}, node ${process.version})`);
  console.log(`CreateOrder: ${(ORDERS / ((createdAt - started) / 1000)).toFixed(0)} req/s, p50 ${pct(50)} ms, p99 ${pct(99)} ms`);
  console.log(`whole saga: ${final} final (${confirmed} confirmed) in ${((doneAt - started) / 1000).toFixed(2)} s = ${(final / ((doneAt - started) / 1000)).toFixed(0)} orders/s end to end`);
  if (final < ORDERS) process.exitCode = 1;

  // Commit-to-handling delay, from every consumer's inbox: occurred_at is
  // stamped in the producer's transaction, handled_at in the consumer's.
  const delays: number[] = [];
  for (const module of allServices) {
    const db = await openServiceDatabase({ service: module.name, migrations: [], env, dataDir, logger: createLogger({ level: "warn" }) });
    const rows = await db.all<{ occurred_at: string; handled_at: string }>("SELECT occurred_at, handled_at FROM event_inbox WHERE status = 'handled' AND handled_at IS NOT NULL");
    for (const r of rows) delays.push(Date.parse(r.handled_at) - Date.parse(r.occurred_at));
    await db.close();
  }
  delays.sort((a, b) => a - b);
  const at = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))];
  const span = (doneAt - started) / 1000;
  console.log(`events: ${delays.length} handled = ${(delays.length / span).toFixed(0)} events/s; commit to handling p50 ${at(50)} ms, p99 ${at(99)} ms`);
} finally {
  await shop.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
