// Opens a service's own database as configuration says (twelve-factor: all
// from the environment):
//   STORE=postgres        PostgreSQL at <SERVICE>_DATABASE_URL (ORDERS_DATABASE_URL for "orders"),
//                         a pool of <SERVICE>_DATABASE_POOL_SIZE, else DATABASE_POOL_SIZE, else 10 connections;
//   STORE=sqlite or unset SQLite at <dataDir>/<service>.db, or in memory when dataDir is ":memory:".
// A service gets only its own URL, so no query can span two services' data.
import { join } from "node:path";
import type { Logger } from "../telemetry/logger.ts";
import { createPostgresDatabase } from "./postgres.ts";
import { openDatabase } from "./sqlite.ts";
import type { Database, Migration } from "./sqlite.ts";

export interface OpenServiceDatabaseOptions {
  /** The service's name ("orders"): names its SQLite file, its URL variable and its connections in pg_stat_activity. */
  service: string;
  migrations: readonly Migration[];
  /** Where STORE, the URL and the pool size are read. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** SQLite only: the folder for <service>.db, or ":memory:". Default env.DATA_DIR, then "./data". */
  dataDir?: string;
  /** Gets one line saying which store was opened (a URL without its password), and PostgreSQL's connection warnings. */
  logger?: Logger;
}

/** The variable holding a service's PostgreSQL URL: "orders" → ORDERS_DATABASE_URL. */
export const databaseUrlVariable = (service: string) => `${envName(service)}_DATABASE_URL`;

const envName = (service: string) => service.toUpperCase().replace(/[^A-Z0-9]+/g, "_");

/** The URL with its password removed, for logs and error messages. */
export function redactDatabaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL (a libpq keyword string, say): nothing in it can be shown safely.
    return "(unparsable database URL)";
  }
  parsed.password = "";
  for (const key of [...parsed.searchParams.keys()]) if (/pass/i.test(key)) parsed.searchParams.set(key, "");
  return parsed.toString();
}

function poolSize(env: Readonly<Record<string, string | undefined>>, service: string): number {
  for (const name of [`${envName(service)}_DATABASE_POOL_SIZE`, "DATABASE_POOL_SIZE"]) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${raw}"`);
    return n;
  }
  return 10;
}

export async function openServiceDatabase(options: OpenServiceDatabaseOptions): Promise<Database> {
  const { service, migrations, logger } = options;
  const env = options.env ?? process.env;
  const store = (env.STORE ?? "").toLowerCase() || "sqlite";

  if (store === "postgres" || store === "postgresql") {
    const variable = databaseUrlVariable(service);
    const url = env[variable];
    if (!url) throw new Error(`STORE=postgres but ${variable} is not set: give ${service} the URL of its own database`);
    const size = poolSize(env, service);
    const db = await createPostgresDatabase({ url, poolSize: size, migrations, logger, applicationName: service });
    logger?.info({ service, store: "postgres", url: redactDatabaseUrl(url), pool_size: size }, "database opened");
    return db;
  }
  if (store !== "sqlite") throw new Error(`STORE must be "sqlite" or "postgres", not "${env.STORE}"`);

  const dataDir = options.dataDir ?? env.DATA_DIR ?? "./data";
  const path = dataDir === ":memory:" ? ":memory:" : join(dataDir, `${service}.db`);
  const db = await openDatabase({ path, migrations });
  logger?.info({ service, store: "sqlite", path }, "database opened");
  return db;
}
