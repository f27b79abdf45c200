// The migration runner both stores share, and the small SQL lexer it needs to
// split a migration into statements (the PostgreSQL store reuses the lexer to
// rewrite placeholders and types without touching string literals).
//
// A migration is applied once, in its own transaction, and recorded in
// schema_migrations in that same transaction. Serialising openers that race on
// one database is the caller's part: PostgreSQL takes an advisory lock around
// migrate(); SQLite's BEGIN IMMEDIATE already lets one writer in at a time, and
// the re-check inside the transaction makes the loser skip what the winner did.
import type { Database, Migration } from "./sqlite.ts";

/** What migrate() needs of a database. */
export type MigrationTarget = Pick<Database, "all" | "get" | "run" | "transaction">;

export interface MigrateOptions {
  /** Rewrites each statement before it runs (PostgreSQL: SQLite DDL to its own). Default: as written. */
  translate?: (statement: string) => string;
}

/** One piece of SQL text: code, or something the lexer must leave alone (a literal, a quoted name, a comment). */
export interface SqlSegment {
  readonly text: string;
  readonly code: boolean;
}

/**
 * Cuts SQL into code and non-code. Understands '…' strings ('' inside),
 * E'…' strings (backslash escapes), "…" quoted names, -- and nested /* *\/
 * comments and $tag$…$tag$ bodies: the constructs of SQLite and PostgreSQL
 * in which a "?", a ";" or a type name is not what it seems.
 */
export function sqlSegments(sql: string): SqlSegment[] {
  const out: SqlSegment[] = [];
  let codeStart = 0;
  let i = 0;
  const push = (end: number, next: number) => {
    if (i > codeStart) out.push({ text: sql.slice(codeStart, i), code: true });
    out.push({ text: sql.slice(i, end), code: false });
    codeStart = i = next;
  };
  const isWord = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$]/.test(c);
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      const escapes = c === "'" && (sql[i - 1] === "E" || sql[i - 1] === "e") && !isWord(sql[i - 2]);
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (escapes && sql[j] === "\\") j++;
        else if (sql[j] === c) {
          if (sql[j + 1] === c) j++;
          else break;
        }
      }
      const end = Math.min(j + 1, sql.length);
      push(end, end);
    } else if (c === "-" && next === "-") {
      const nl = sql.indexOf("\n", i);
      const end = nl === -1 ? sql.length : nl;
      push(end, end);
    } else if (c === "/" && next === "*") {
      let depth = 0;
      let j = i;
      for (; j < sql.length; j++) {
        if (sql[j] === "/" && sql[j + 1] === "*") {
          depth++;
          j++;
        } else if (sql[j] === "*" && sql[j + 1] === "/") {
          depth--;
          j++;
          if (depth === 0) break;
        }
      }
      const end = Math.min(j + 1, sql.length);
      push(end, end);
    } else if (c === "$" && !isWord(sql[i - 1])) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (!tag) {
        i++;
        continue;
      }
      const close = sql.indexOf(tag[0], i + tag[0].length);
      const end = close === -1 ? sql.length : close + tag[0].length;
      push(end, end);
    } else {
      i++;
    }
  }
  if (codeStart < sql.length) out.push({ text: sql.slice(codeStart), code: true });
  return out;
}

/** Applies fn to the code parts of sql only; literals, quoted names and comments pass through as they are. */
export function mapCode(sql: string, fn: (code: string) => string): string {
  return sqlSegments(sql)
    .map((s) => (s.code ? fn(s.text) : s.text))
    .join("");
}

/** Splits a script at the semicolons that end statements (not those inside literals or comments). */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let current = "";
  for (const segment of sqlSegments(script)) {
    if (!segment.code) {
      current += segment.text;
      continue;
    }
    const parts = segment.text.split(";");
    current += parts[0];
    for (const part of parts.slice(1)) {
      statements.push(current);
      current = part;
    }
  }
  statements.push(current);
  // A piece with nothing but whitespace and comments is not a statement.
  return statements.map((s) => s.trim()).filter((s) => sqlSegments(s).some((seg) => (seg.code ? seg.text.trim() !== "" : !/^(--|\/\*)/.test(seg.text))));
}

const MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

/** Applies the migrations not applied yet, in ascending version order; answers the versions it applied. */
export async function migrate(db: MigrationTarget, migrations: readonly Migration[], options: MigrateOptions = {}): Promise<number[]> {
  const translate = options.translate ?? ((s: string) => s);
  const seen = new Map<number, string>();
  for (const m of migrations) {
    if (!Number.isSafeInteger(m.version)) throw new Error(`migration "${m.name}": version ${m.version} is not an integer`);
    const other = seen.get(m.version);
    if (other !== undefined) throw new Error(`migrations "${other}" and "${m.name}" share version ${m.version}`);
    seen.set(m.version, m.name);
  }

  await db.run(translate(MIGRATIONS_TABLE));
  const applied = new Set((await db.all<{ version: number | bigint }>("SELECT version FROM schema_migrations")).map((r) => Number(r.version)));
  const pending = [...migrations].sort((a, b) => a.version - b.version).filter((m) => !applied.has(m.version));
  const done: number[] = [];
  for (const m of pending) {
    // Translated before the transaction opens: a statement the dialect cannot express fails without touching the database.
    const statements = splitStatements(m.sql).map(translate);
    const ran = await db.transaction(async (tx) => {
      if (await tx.get("SELECT version FROM schema_migrations WHERE version = ?", m.version)) return false;
      for (const statement of statements) {
        try {
          await tx.run(statement);
        } catch (err) {
          const shown = statement.length > 300 ? `${statement.slice(0, 300)}…` : statement;
          throw new Error(`migration ${m.version} "${m.name}" failed: ${(err as Error).message}\n  in: ${shown}`, { cause: err });
        }
      }
      await tx.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.version, m.name, new Date().toISOString());
      return true;
    });
    if (ran) done.push(m.version);
  }
  return done;
}
