// CreateOrder throughput and latency with the load generator in its own
// process: the shop runs as `make run` does (runner/embedded.ts) pinned to
// core 1, ghz drives CreateOrder from core 0 with a fresh idempotency key per
// call. Not a test. `make bench-orders` (SQLite), `make bench-orders
// STORE=postgres` (a throwaway PostgreSQL, DATABASE_POOL_SIZE, default 10).
// The saga's events stay in the outbox (EVENT_RELAY_HOLD=1), so the figure is
// the write path of CreateOrder itself; bench-saga measures the whole saga.
//   N (default 10000) calls, C (default 50) concurrent, 10 connections.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserService } from "../gen/shop/users/v1/users_pb.js";
import { startServerProcess } from "../test/support/process.ts";
import { getSharedPostgres } from "../test/support/postgres.ts";

const N = Number(process.env.N ?? 10_000);
const C = Number(process.env.C ?? 50);
const dataDir = mkdtempSync(join(tmpdir(), "shop-bench-orders-"));
const env: Record<string, string> = { DATA_DIR: dataDir, EVENT_RELAY_HOLD: "1", SHOP_DEV_KEYS: "1", LOG_LEVEL: "info" };
if (process.env.STORE === "postgres") {
  Object.assign(env, (await (await getSharedPostgres()).createDatabases(["users", "catalog", "inventory", "orders", "payments", "notifications", "storefront"])).env);
}
const pinned = spawnSync("taskset", ["--version"], { stdio: "ignore" }).status === 0;
const shop = await startServerProcess("runner/embedded.ts", env);
if (pinned) spawnSync("taskset", ["-a", "-p", "-c", "1", String(shop.child.pid)], { stdio: "ignore" });
try {
  const users = createClient(UserService, createGrpcTransport({ baseUrl: shop.url }));
  await users.signUp({ email: "bench@example.com", password: "bench-password", displayName: "Bench" });
  const { token } = await users.login({ email: "bench@example.com", password: "bench-password" });
  const data = JSON.stringify({
    idempotency_key: "bench-{{.RequestNumber}}-{{.UUID}}",
    items: [{ sku: "espresso-beans-1kg", quantity: 1 }],
    payment_method: "pm_card_ok",
  });
  const args = [
    ...(pinned ? ["-c", "0", "ghz"] : []),
    "--insecure",
    "--call",
    "shop.orders.v1.OrderService/CreateOrder",
    "-d",
    data,
    "-m",
    JSON.stringify({ authorization: `Bearer ${token}` }),
    "--connections",
    "10",
    "-c",
    String(C),
    "-n",
    String(N),
    "-t",
    "10s",
    "-O",
    "json",
    shop.address,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(pinned ? "taskset" : "ghz", args, { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.once("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`ghz exited ${code}`))));
  });
  const report = JSON.parse(out) as { rps: number; count: number; latencyDistribution: Array<{ percentage: number; latency: number }>; statusCodeDistribution: Record<string, number> };
  const at = (p: number) => (report.latencyDistribution.find((d) => d.percentage === p)?.latency ?? NaN) / 1e6;
  const store = process.env.STORE === "postgres" ? `PostgreSQL, pool ${process.env.DATABASE_POOL_SIZE ?? 10}` : "SQLite";
  console.log(`CreateOrder (${store}, ${N} calls, ${C} concurrent, ghz in its own process): ${report.rps.toFixed(0)} req/s, p50 ${at(50).toFixed(1)} ms, p99 ${at(99).toFixed(1)} ms, statuses ${JSON.stringify(report.statusCodeDistribution)}`);
} finally {
  await shop.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
