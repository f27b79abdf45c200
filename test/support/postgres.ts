// Real PostgreSQL servers for tests: each a throwaway cluster in a temporary
// folder on a free loopback port, started and stopped by infra/postgres.sh
// (the same script behind `make infra-up`, so there is one way to run one).
// Servers still running when the process exits are stopped and deleted.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "pg";

const SCRIPT = fileURLToPath(new URL("../../infra/postgres.sh", import.meta.url));

// Durability is worthless for data deleted at the end of the run, and fsync
// makes each start and stop cost seconds. Several test shops, each with a
// pool per service, need more than the default 100 connections.
const TEST_SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400";

export interface TestDatabases {
  /** STORE=postgres and <SERVICE>_DATABASE_URL for each service: what openServiceDatabase reads. */
  readonly env: Record<string, string>;
  /** Each service's URL, by service name. */
  readonly urls: Record<string, string>;
  /** Drops the databases (closing whatever is still connected) and their roles. */
  drop(): Promise<void>;
}

export interface TestPostgres {
  /** The superuser's URL (database "postgres"). */
  readonly adminUrl: string;
  readonly port: number;
  /**
   * A fresh database and role per service, with random names and passwords,
   * so shops started in parallel never share data.
   */
  createDatabases(services: readonly string[]): Promise<TestDatabases>;
  /** Stops the server, keeping its data: an outage. Does nothing when it is stopped. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port and data. Does nothing when it runs. */
  startServer(): Promise<void>;
  /** stopServer() then startServer(). */
  restart(): Promise<void>;
  /** Stops the server (running or not) and deletes its folder. */
  stop(): Promise<void>;
}

/** Instances not stopped yet, for the exit hook. */
const live = new Set<{ folder: string; env: NodeJS.ProcessEnv }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers may only do synchronous work: spawnSync waits for the script.
  process.on("exit", () => {
    for (const instance of live) {
      spawnSync(SCRIPT, ["down", "--purge"], { env: instance.env, stdio: "ignore" });
      rmSync(instance.folder, { recursive: true, force: true });
    }
  });
}

function script(env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`infra/postgres.sh ${args.join(" ")} exited ${code}: ${err.trim()}`))));
  });
}

/** A port nobody listens on right now (the server may still lose a race for it: the caller retries). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function asAdmin<T>(adminUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminUrl });
  // A server stopped mid-way must fail this call, not the process.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const folder = mkdtempSync(join(tmpdir(), "shop-pg-"));
  // The server runs as the postgres user when the tests run as root: it must be able to enter the folder.
  chmodSync(folder, 0o711);
  const instance = { folder, env: { ...process.env, INFRA_DIR: folder, PG_OPTIONS: TEST_SERVER_OPTIONS } as NodeJS.ProcessEnv };
  installExitHook();
  live.add(instance);

  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    instance.env.PG_PORT = String(port);
    try {
      await script(instance.env, "start");
      break;
    } catch (err) {
      if (attempt === 3) {
        live.delete(instance);
        await script(instance.env, "down", "--purge");
        rmSync(folder, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const adminUrl = await script(instance.env, "admin-url");
  let removed = false;

  const stopServer = () => script(instance.env, "stop").then(() => undefined);
  const startServer = async () => {
    if (removed) throw new Error("this test PostgreSQL was stopped for good");
    await script(instance.env, "start");
  };

  return {
    adminUrl,
    port,
    async createDatabases(services) {
      const tag = randomBytes(4).toString("hex");
      const entries = services.map((service) => {
        const safe = service.toLowerCase().replace(/[^a-z0-9]+/g, "_");
        return { service, name: `t${tag}_${safe}`, password: randomBytes(18).toString("hex") };
      });
      await asAdmin(adminUrl, async (client) => {
        for (const e of entries) {
          // FILE_COPY: with fsync off its checkpoint is cheap, and it is twice as fast as the default WAL_LOG copy.
          await client.query(`CREATE ROLE "${e.name}" LOGIN PASSWORD '${e.password}'`);
          await client.query(`CREATE DATABASE "${e.name}" OWNER "${e.name}" STRATEGY FILE_COPY`);
          await client.query(`REVOKE ALL ON DATABASE "${e.name}" FROM PUBLIC`);
        }
      });
      const urls: Record<string, string> = {};
      const env: Record<string, string> = { STORE: "postgres" };
      for (const e of entries) {
        urls[e.service] = `postgres://${e.name}:${e.password}@127.0.0.1:${port}/${e.name}`;
        env[`${e.service.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_DATABASE_URL`] = urls[e.service];
      }
      return {
        env,
        urls,
        drop: () =>
          asAdmin(adminUrl, async (client) => {
            for (const e of entries) {
              await client.query(`DROP DATABASE IF EXISTS "${e.name}" WITH (FORCE)`);
              await client.query(`DROP ROLE IF EXISTS "${e.name}"`);
            }
          }),
      };
    },
    stopServer,
    startServer,
    async restart() {
      await stopServer();
      await startServer();
    },
    async stop() {
      removed = true;
      await script(instance.env, "down", "--purge");
      rmSync(folder, { recursive: true, force: true });
      live.delete(instance);
    },
  };
}

let shared: Promise<TestPostgres> | undefined;

/**
 * One server for the whole test process, started on first use and stopped at
 * exit. Tests isolate themselves with createDatabases(); a test that needs an
 * outage starts its own with startTestPostgres() instead of stopping this one.
 */
export function getSharedPostgres(): Promise<TestPostgres> {
  shared ??= startTestPostgres().catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

/** A new, empty database of one store, to open as often as a test likes. */
export interface StoreTarget {
  /** The service name its database belongs to. */
  readonly service: string;
  /** What openServiceDatabase reads to reach it (STORE and the URL, or DATA_DIR). */
  readonly env: Record<string, string>;
  /** Removes the database and whatever it left on disk. */
  dispose(): Promise<void>;
}

export interface TestStore {
  readonly name: "SQLite" | "PostgreSQL";
  target(service?: string): Promise<StoreTarget>;
}

/** The stores every test that touches a database runs against. PostgreSQL is the shared test server. */
export const TEST_STORES: readonly TestStore[] = [
  {
    name: "SQLite",
    async target(service = "store") {
      const dir = mkdtempSync(join(tmpdir(), "shop-sqlite-"));
      return { service, env: { STORE: "sqlite", DATA_DIR: dir }, dispose: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: "PostgreSQL",
    async target(service = "store") {
      const databases = await (await getSharedPostgres()).createDatabases([service]);
      return { service, env: databases.env, dispose: () => databases.drop() };
    },
  },
];
