// The shop as `make run` starts it, for fault drills: runner/embedded.ts in
// its own process, on PostgreSQL (a database per service) and NATS JetStream,
// both real servers owned by the drill so it can stop, kill and restart them
// without disturbing any other test.
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { testAuthority } from "../support/keys.ts";
import { Health } from "../../gen/health/v1/health_pb.js";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { startTestNats } from "../support/nats.ts";
import type { TestNats } from "../support/nats.ts";
import { startTestPostgres } from "../support/postgres.ts";
import type { TestDatabases, TestPostgres } from "../support/postgres.ts";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";

/** Every service runner/embedded.ts starts: each opens its own database. */
export const SHOP_SERVICES = ["users", "catalog", "inventory", "orders", "payments", "notifications", "storefront"] as const;

/** A PostgreSQL server and a nats-server that only this drill uses. */
export interface DrillInfra {
  readonly pg: TestPostgres;
  readonly nats: TestNats;
  dispose(): Promise<void>;
}

export async function startDrillInfra(): Promise<DrillInfra> {
  const [pg, nats] = await Promise.all([startTestPostgres(), startTestNats()]);
  return {
    pg,
    nats,
    async dispose() {
      await Promise.allSettled([pg.stop(), nats.dispose()]);
    },
  };
}

/** One shop's data: its databases and its own JetStream stream, which outlive the shop's process across kills. */
export interface DrillData {
  readonly databases: TestDatabases;
  /** EVENT_STREAM and EVENT_SUBJECT_PREFIX: events go to `<subjectPrefix>.<event type>`. */
  readonly stream: string;
  readonly subjectPrefix: string;
  /** What the shop process reads to reach all of it. */
  env(): Record<string, string>;
}

export async function createDrillData(infra: DrillInfra): Promise<DrillData> {
  const databases = await infra.pg.createDatabases(SHOP_SERVICES);
  const id = randomBytes(4).toString("hex");
  const stream = `DRILL_${id}`;
  const subjectPrefix = `drill.${id}`;
  return {
    databases,
    stream,
    subjectPrefix,
    env: () => ({
      ...databases.env,
      BUS: "nats",
      NATS_URL: infra.nats.url,
      EVENT_STREAM: stream,
      EVENT_SUBJECT_PREFIX: subjectPrefix,
    }),
  };
}

export interface DrillShop {
  readonly process: ServerProcess;
  readonly users: Client<typeof UserService>;
  readonly orders: Client<typeof OrderService>;
  readonly health: Client<typeof Health>;
  readonly events: Client<typeof EventAdminService>;
  /** Call options carrying an operator's service token (EventAdminService is service-only). */
  operator(): Promise<{ headers: { authorization: string } }>;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<void>;
  /** How the process ended, with the end of its stderr, if it ends within waitMs (undefined while it runs). */
  exitReport(waitMs?: number): Promise<string | undefined>;
}

/**
 * Starts runner/embedded.ts on the drill's data. The defaults keep the saga's
 * outcome a function of the orders alone: no saga timeout or reservation
 * expiry fires during a drill, and the provider answers fast.
 */
export async function startDrillShop(data: DrillData, extra: Record<string, string> = {}): Promise<DrillShop> {
  const child = await startServerProcess(
    "runner/embedded.ts",
    {
      ...data.env(),
      DATA_DIR: ":memory:",
      LOG_LEVEL: "info",
      PAYMENT_PROVIDER_LATENCY_MS: "2",
      ORDER_SAGA_TIMEOUT_MS: "600000",
      INVENTORY_RESERVATION_TTL_MS: "600000",
      EVENT_ACK_WAIT_MS: "2000",
      DATABASE_HEALTH_INTERVAL_MS: "200",
      ...extra,
    },
    30_000,
  );
  const stderr: string[] = [];
  child.child.stderr!.on("data", (chunk: Buffer) => {
    stderr.push(chunk.toString());
    if (stderr.length > 50) stderr.shift();
  });
  const transport = createGrpcTransport({ baseUrl: child.url });
  const authority = testAuthority();
  return {
    process: child,
    users: createClient(UserService, transport),
    orders: createClient(OrderService, transport),
    health: createClient(Health, transport),
    events: createClient(EventAdminService, transport),
    operator: async () => ({ headers: { authorization: `Bearer ${await authority.issueServiceToken("operator")}` } }),
    kill: () => child.stop(),
    async exitReport(waitMs = 0) {
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, waitMs))]);
      const { exitCode, signalCode } = child.child;
      if (exitCode === null && signalCode === null) return undefined;
      return `the shop process exited (code ${exitCode}, signal ${signalCode}); its stderr ends:\n${stderr.join("").slice(-2000)}`;
    },
  };
}

/** A signed-up, logged-in customer: call options carrying their token. */
export interface Customer {
  readonly userId: string;
  readonly auth: { headers: { authorization: string } };
}

export async function signUpCustomers(shop: DrillShop, count: number): Promise<Customer[]> {
  const tag = randomBytes(3).toString("hex");
  // One at a time: each sign-up runs scrypt on the shop's thread pool, and
  // twenty at once on a busy two-core machine can outlast SignUp's deadline.
  const customers: Customer[] = [];
  for (let i = 0; i < count; i++) {
    const email = `drill-${tag}-${i}@example.com`;
    const { user } = await shop.users.signUp({ email, password: "fault-drill-password", displayName: `Drill ${i}` });
    const { token } = await shop.users.login({ email, password: "fault-drill-password" });
    customers.push({ userId: user!.id, auth: { headers: { authorization: `Bearer ${token}` } } });
  }
  return customers;
}
