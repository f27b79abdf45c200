// The migration runner: statements split where they really end; each migration
// applied once, in order, all or nothing; openers racing on one database
// (replicas starting together) apply each migration exactly once.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_STORES } from "../../test/support/postgres.ts";
import type { StoreTarget } from "../../test/support/postgres.ts";
import { splitStatements, sqlSegments } from "./migrate.ts";
import { openServiceDatabase } from "./open-database.ts";
import type { Database, Migration } from "./sqlite.ts";

/** The error a promise rejects with; fails the test when it resolves. */
const rejectionOf = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => expect.fail("expected a rejection"),
    (err: unknown) => err as Error,
  );

describe("splitting a migration into statements", () => {
  it("splits at semicolons that end statements, not at those inside literals, quoted names or comments", () => {
    const script = `
      CREATE TABLE a (x TEXT DEFAULT ';');
      -- a comment; with a semicolon
      INSERT INTO a (x) VALUES ('it''s; fine');
      /* block; /* nested; */ still comment; */ INSERT INTO "we;ird" VALUES (E'back\\'slash;');
      DO $body$ BEGIN PERFORM 1; END $body$;
    `;
    expect(splitStatements(script)).to.deep.equal([
      "CREATE TABLE a (x TEXT DEFAULT ';')",
      "-- a comment; with a semicolon\n      INSERT INTO a (x) VALUES ('it''s; fine')",
      `/* block; /* nested; */ still comment; */ INSERT INTO "we;ird" VALUES (E'back\\'slash;')`,
      "DO $body$ BEGIN PERFORM 1; END $body$",
    ]);
  });

  it("drops pieces that hold only whitespace or comments", () => {
    expect(splitStatements("SELECT 1;\n;\n  -- done\n")).to.deep.equal(["SELECT 1"]);
  });

  it("tells code from literals, keeping $1 and a lone $ as code", () => {
    expect(sqlSegments("SELECT $1, 'a?b', x$y FROM t")).to.deep.equal([
      { text: "SELECT $1, ", code: true },
      { text: "'a?b'", code: false },
      { text: ", x$y FROM t", code: true },
    ]);
  });
});

const base: Migration[] = [
  { version: 1, name: "log", sql: "CREATE TABLE applied_log (version INTEGER NOT NULL, note TEXT NOT NULL)" },
  { version: 2, name: "first entry", sql: "INSERT INTO applied_log (version, note) VALUES (2, 'two; with a semicolon')" },
];

for (const store of TEST_STORES) {
  describe(`migrations on ${store.name}`, () => {
    let target: StoreTarget;
    const opened: Database[] = [];
    const open = async (migrations: readonly Migration[]) => {
      const db = await openServiceDatabase({ service: target.service, migrations, env: target.env });
      opened.push(db);
      return db;
    };

    beforeEach(async () => {
      target = await store.target();
    });
    afterEach(async () => {
      try {
        for (const db of opened.splice(0)) await db.close();
      } finally {
        await target.dispose();
      }
    });

    it("applies each migration once, in version order, whatever order they are listed in", async () => {
      const reversed: Migration[] = [{ version: 3, name: "second entry", sql: "INSERT INTO applied_log (version, note) VALUES (3, 'three')" }, ...base].reverse();
      const first = await open(reversed);
      expect(await first.all("SELECT version, note FROM applied_log ORDER BY version")).to.deep.equal([
        { version: 2, note: "two; with a semicolon" },
        { version: 3, note: "three" },
      ]);
      await first.close();
      opened.length = 0;

      // Opening again applies only what is new.
      const again = await open([...reversed, { version: 4, name: "third entry", sql: "INSERT INTO applied_log (version, note) VALUES (4, 'four')" }]);
      expect(await again.all("SELECT version FROM applied_log ORDER BY version")).to.deep.equal([{ version: 2 }, { version: 3 }, { version: 4 }]);
      expect(await again.all("SELECT version, name FROM schema_migrations ORDER BY version")).to.deep.equal([
        { version: 1, name: "log" },
        { version: 2, name: "first entry" },
        { version: 3, name: "second entry" },
        { version: 4, name: "third entry" },
      ]);
    });

    it("applies a migration all or nothing, and names the one that failed", async () => {
      const broken: Migration = {
        version: 3,
        name: "half broken",
        sql: "CREATE TABLE extra (x TEXT); INSERT INTO applied_log (version, note) VALUES (3, 'three'); INSERT INTO no_such_table VALUES (1)",
      };
      const error = await rejectionOf(open([...base, broken]));
      expect(error).to.be.instanceOf(Error);
      expect(error.message).to.match(/migration 3 "half broken" failed/);
      expect(error.message).to.include("no_such_table");

      const fixed = await open([...base, { ...broken, sql: "CREATE TABLE extra (x TEXT); INSERT INTO applied_log (version, note) VALUES (3, 'three')" }]);
      // The failed attempt left neither its table (or CREATE TABLE would fail now) nor its row.
      expect(await fixed.all("SELECT version FROM applied_log ORDER BY version")).to.deep.equal([{ version: 2 }, { version: 3 }]);
    });

    it("refuses two migrations with one version", async () => {
      const error = await rejectionOf(open([...base, { version: 2, name: "clash", sql: "SELECT 1" }]));
      expect(error.message).to.match(/share version 2/);
    });
  });
}

describe("replicas starting together", () => {
  // Each migration would fail if applied twice (CREATE TABLE without IF NOT
  // EXISTS) or leave a second row behind.
  const racing: Migration[] = [
    ...base,
    { version: 3, name: "slow index", sql: "CREATE INDEX applied_log_by_version ON applied_log (version); INSERT INTO applied_log (version, note) VALUES (3, 'three')" },
  ];
  const expectAppliedOnce = async (db: Database) => {
    expect(await db.all("SELECT version FROM applied_log ORDER BY version")).to.deep.equal([{ version: 2 }, { version: 3 }]);
    expect(await db.all("SELECT version FROM schema_migrations ORDER BY version")).to.deep.equal([{ version: 1 }, { version: 2 }, { version: 3 }]);
  };

  it("PostgreSQL: five openers of one database apply each migration once (advisory lock)", async () => {
    const target = await TEST_STORES.find((s) => s.name === "PostgreSQL")!.target("orders");
    try {
      const dbs = await Promise.all(Array.from({ length: 5 }, () => openServiceDatabase({ service: "orders", migrations: racing, env: target.env })));
      await expectAppliedOnce(dbs[0]);
      for (const db of dbs) await db.close();
    } finally {
      await target.dispose();
    }
  });

  it("SQLite: five processes opening one file apply each migration once", async () => {
    const target = await TEST_STORES.find((s) => s.name === "SQLite")!.target("orders");
    try {
      const opener = `
        import { openServiceDatabase } from ${JSON.stringify(join(fileURLToPath(import.meta.url), "..", "open-database.ts"))};
        const db = await openServiceDatabase({ service: "orders", migrations: JSON.parse(process.env.MIGRATIONS), env: process.env });
        await db.close();
      `;
      const runs = Array.from(
        { length: 5 },
        () =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, ["--input-type=module", "-e", opener], {
              env: { ...process.env, ...target.env, MIGRATIONS: JSON.stringify(racing) },
              stdio: ["ignore", "ignore", "pipe"],
            });
            let stderr = "";
            child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
            child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`opener exited ${code}: ${stderr}`))));
          }),
      );
      await Promise.all(runs);
      const db = await openServiceDatabase({ service: "orders", migrations: racing, env: target.env });
      await expectAppliedOnce(db);
      await db.close();
    } finally {
      await target.dispose();
    }
  });
});
