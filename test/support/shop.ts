// The shop (or some of its services) started inside the test process on an
// ephemeral loopback port, with logs kept in memory for assertions.
import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { createLogger } from "@shop/platform";
import type { ServiceModule, TokenAuthority } from "@shop/platform";
import { startShop } from "../../runner/shop.ts";
import { getSharedNats } from "./nats.ts";
import { getSharedPostgres } from "./postgres.ts";
import type { RunningShop } from "../../runner/shop.ts";
import { testAuthority } from "./keys.ts";

/**
 * SHOP_TEST_STORE=postgres gives every service of the shop a fresh database
 * on a real PostgreSQL server (one shared per test run).
 * SHOP_TEST_BUS=nats runs the shop's events through a real JetStream server
 * (one shared per test run, a stream of its own per shop: a restart on the
 * same dataDir reuses it).
 */
async function testBackendEnv(dataDir: string | undefined, services: readonly string[]): Promise<{ env: Record<string, string>; drop?: () => Promise<void> }> {
  const env: Record<string, string> = {};
  let drop: (() => Promise<void>) | undefined;
  if (process.env.SHOP_TEST_STORE === "postgres") {
    // Fresh databases per shop; shops given the same dataDir (a restart, a
    // second replica) share one set, kept until the process ends.
    const known = dataDir ? postgresByDataDir.get(dataDir) : undefined;
    const missing = services.filter((s) => !known?.services.has(s));
    const created = missing.length > 0 ? await (await getSharedPostgres()).createDatabases(missing) : undefined;
    const merged = { services: new Set([...(known?.services ?? []), ...missing]), env: { ...known?.env, ...created?.env } };
    if (dataDir) postgresByDataDir.set(dataDir, merged);
    else drop = created?.drop;
    Object.assign(env, merged.env, { STORE: "postgres" });
  }
  if (process.env.SHOP_TEST_BUS === "nats") {
    const nats = await getSharedNats();
    const id = dataDir ? createHash("sha256").update(dataDir).digest("hex").slice(0, 12) : randomBytes(6).toString("hex");
    Object.assign(env, { BUS: "nats", NATS_URL: nats.url, EVENT_STREAM: `TEST_${id}`, EVENT_SUBJECT_PREFIX: `test.${id}` });
  }
  return { env, drop };
}

const postgresByDataDir = new Map<string, { services: Set<string>; env: Record<string, string> }>();

export interface TestShop {
  readonly shop: RunningShop;
  readonly address: string;
  readonly url: string;
  readonly logs: Array<Record<string, unknown>>;
  readonly tokens: TokenAuthority;
  readonly transport: Transport;
  client<S extends DescService>(service: S): Client<S>;
  /** Call options carrying a bearer token. */
  as(token: string): { headers: { authorization: string } };
  stop(): Promise<void>;
}

export interface TestShopOptions {
  /** Folder for the SQLite files; default in memory. Pass a folder to restart on the same data. */
  dataDir?: string;
  /** Extra configuration the services read through ctx.env, on top of process.env. */
  env?: Record<string, string>;
  /** Consumer tuning, for example fewer attempts and shorter backoff in dead-letter tests. */
  events?: { maxAttempts?: number; backoffMs?: number; retryLaterWindowMs?: number; concurrency?: number };
}

export async function startTestShop(modules: readonly ServiceModule[], options: TestShopOptions = {}): Promise<TestShop> {
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const tokens = testAuthority();
  const backends = await testBackendEnv(options.dataDir, modules.map((m) => m.name));
  const shop = await startShop({
    modules,
    port: 0,
    host: "127.0.0.1",
    dataDir: options.dataDir ?? ":memory:",
    logger: createLogger({ destination, level: "info" }),
    tokens,
    drainTimeoutMs: 2000,
    events: options.events,
    env: { ...process.env, ...backends.env, ...options.env },
  });
  const url = `http://127.0.0.1:${shop.port}`;
  const transport = createGrpcTransport({ baseUrl: url });
  return {
    shop,
    address: `127.0.0.1:${shop.port}`,
    url,
    logs,
    tokens,
    transport,
    client: (service) => createClient(service, transport),
    as: (token) => ({ headers: { authorization: `Bearer ${token}` } }),
    async stop() {
      await shop.stop();
      await backends.drop?.();
    },
  };
}
