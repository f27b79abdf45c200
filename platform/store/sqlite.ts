// A service's own database: node:sqlite (built in, no native addon), WAL, and
// versioned migrations owned by the service (applied by migrate.ts). The
// interface is asynchronous and the SQL uses "?" placeholders so the
// PostgreSQL implementation (postgres.ts) stands behind it unchanged.
import { DatabaseSync } from "node:sqlite";
import type { SQLInputValue } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { migrate } from "./migrate.ts";

export type SqlValue = SQLInputValue;
export type Row = Record<string, SqlValue>;

export interface Queryable {
  all<T = Row>(sql: string, ...params: SqlValue[]): Promise<T[]>;
  get<T = Row>(sql: string, ...params: SqlValue[]): Promise<T | undefined>;
  /** Runs a write; answers how many rows it changed. */
  run(sql: string, ...params: SqlValue[]): Promise<number>;
}

export interface Database extends Queryable {
  /** Runs fn in one transaction: all its writes commit together or none do. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Cheap round trip; throws when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface Migration {
  /** Applied in ascending order, each once. */
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export interface OpenOptions {
  /** File path, or ":memory:" for a throwaway database. */
  path: string;
  migrations: readonly Migration[];
}

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
  const db = new DatabaseSync(options.path);
  // busy_timeout first: switching to WAL takes a lock that another process
  // opening the same file (a replica starting alongside) may hold for a moment.
  db.exec("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
  const statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  const prepare = (sql: string) => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
  const direct: Queryable = {
    all: async <T>(sql: string, ...params: SqlValue[]) => prepare(sql).all(...params) as T[],
    get: async <T>(sql: string, ...params: SqlValue[]) => prepare(sql).get(...params) as T | undefined,
    run: async (sql, ...params) => Number(prepare(sql).run(...params).changes),
  };

  // One connection: a transaction that awaits must not interleave with other
  // statements, so every access waits its turn. Uncontended, that is one
  // resolved promise.
  let tail: Promise<unknown> = Promise.resolve();
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = tail.then(fn);
    tail = result.catch(() => undefined);
    return result;
  };

  const database: Database = {
    all: (sql, ...params) => serialized(() => direct.all(sql, ...params)),
    get: (sql, ...params) => serialized(() => direct.get(sql, ...params)),
    run: (sql, ...params) => serialized(() => direct.run(sql, ...params)),
    transaction: (fn) =>
      serialized(async () => {
        db.exec("BEGIN IMMEDIATE");
        try {
          const result = await fn(direct);
          db.exec("COMMIT");
          return result;
        } catch (err) {
          db.exec("ROLLBACK");
          throw err;
        }
      }),
    ping: () => serialized(async () => void db.prepare("SELECT 1").get()),
    close: () => serialized(async () => db.close()),
  };
  try {
    await migrate(database, options.migrations);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}
