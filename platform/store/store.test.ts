// One behaviour, two stores: what store code relies on holds on SQLite and on a
// real PostgreSQL alike, with the same SQL and the same migrations.
import { expect } from "chai";
import { TEST_STORES } from "../../test/support/postgres.ts";
import type { StoreTarget } from "../../test/support/postgres.ts";
import { openServiceDatabase } from "./open-database.ts";
import type { Database, Migration } from "./sqlite.ts";

/** The error a promise rejects with; fails the test when it resolves. */
const rejectionOf = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => expect.fail("expected a rejection"),
    (err: unknown) => err as Error,
  );

// Written in SQLite's DDL, as every service's migrations are.
const schema: Migration[] = [
  {
    version: 1,
    name: "things",
    sql: `
      CREATE TABLE things (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        note TEXT,
        at_ms INTEGER,
        body BLOB
      );
      CREATE TABLE counter (id TEXT PRIMARY KEY, n INTEGER NOT NULL);
      INSERT INTO counter (id, n) VALUES ('hits', 0);
    `,
  },
];

for (const store of TEST_STORES) {
  describe(`store on ${store.name}`, () => {
    let target: StoreTarget;
    let db: Database;
    const opened: Database[] = [];

    beforeEach(async () => {
      target = await store.target();
      db = await openServiceDatabase({ service: target.service, migrations: schema, env: target.env });
      opened.push(db);
    });
    afterEach(async () => {
      try {
        for (const d of opened.splice(0)) await d.close();
      } finally {
        await target.dispose();
      }
    });

    it("binds ? placeholders in order and leaves a ? inside literals, quoted names and comments alone", async () => {
      await db.run(`INSERT INTO things (name, note) VALUES (?, 'why? because?') -- a comment? yes\n`, "a");
      await db.run("INSERT INTO things (name, note) VALUES (?, ?)", "b", "it''s ?");
      const rows = await db.all<{ "odd?": string; note: string }>(
        `SELECT name AS "odd?", note FROM things WHERE note = 'why? because?' /* or? */ OR name = ? ORDER BY name`,
        "b",
      );
      expect(rows).to.deep.equal([
        { "odd?": "a", note: "why? because?" },
        { "odd?": "b", note: "it''s ?" },
      ]);
    });

    it("answers how many rows a write changed, 0 for a conflict that did nothing", async () => {
      expect(await db.run("INSERT INTO things (name) VALUES (?)", "x")).to.equal(1);
      expect(await db.run("INSERT INTO things (name) VALUES (?) ON CONFLICT (name) DO NOTHING", "x")).to.equal(0);
      await db.run("INSERT INTO things (name) VALUES (?)", "y");
      expect(await db.run("UPDATE things SET note = ? WHERE name IN (?, ?)", "n", "x", "y")).to.equal(2);
      expect(await db.get("SELECT name FROM things WHERE name = ?", "nobody")).to.equal(undefined);
    });

    it("numbers AUTOINCREMENT keys 1, 2, 3 and keeps epoch milliseconds and other 8-byte integers as JS numbers", async () => {
      const now = 1_767_225_600_123; // beyond a 4-byte integer
      for (const name of ["a", "b", "c"]) await db.run("INSERT INTO things (name, at_ms) VALUES (?, ?)", name, now);
      await db.run("INSERT INTO things (name, at_ms) VALUES (?, ?)", "big", BigInt(Number.MAX_SAFE_INTEGER));
      const rows = await db.all<{ seq: number; at_ms: number }>("SELECT seq, at_ms FROM things ORDER BY seq");
      expect(rows.map((r) => r.seq)).to.deep.equal([1, 2, 3, 4]);
      expect(rows.map((r) => r.at_ms)).to.deep.equal([now, now, now, Number.MAX_SAFE_INTEGER]);
      // Arithmetic straight on row values, as some service code does.
      expect(rows[0].at_ms + 1).to.equal(now + 1);
      const count = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM things WHERE at_ms > ?", now - 1);
      expect(count).to.deep.equal({ n: 4 });
    });

    it("round-trips bytes (a blob) exactly, the empty one and NULL included", async () => {
      const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255, 0]);
      await db.run("INSERT INTO things (name, body) VALUES (?, ?)", "bytes", bytes);
      await db.run("INSERT INTO things (name, body) VALUES (?, ?)", "empty", new Uint8Array(0));
      await db.run("INSERT INTO things (name, body) VALUES (?, ?)", "none", null);
      const rows = await db.all<{ name: string; body: Uint8Array | null }>("SELECT name, body FROM things ORDER BY seq");
      expect(rows[0].body).to.be.instanceOf(Uint8Array);
      expect([...rows[0].body!]).to.deep.equal([...bytes]);
      expect(rows[1].body).to.be.instanceOf(Uint8Array);
      expect(rows[1].body!.length).to.equal(0);
      expect(rows[2].body).to.equal(null);
    });

    it("commits a transaction's writes together and answers what its callback returned", async () => {
      const result = await db.transaction(async (tx) => {
        await tx.run("INSERT INTO things (name) VALUES (?)", "one");
        await tx.run("INSERT INTO things (name) VALUES (?)", "two");
        // A transaction reads its own writes.
        return (await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM things"))!.n;
      });
      expect(result).to.equal(2);
      expect(await db.all("SELECT name FROM things ORDER BY seq")).to.deep.equal([{ name: "one" }, { name: "two" }]);
    });

    it("rolls back every write of a transaction whose callback throws, and rethrows its error", async () => {
      const failure = new Error("changed my mind");
      const outcome = await rejectionOf(
        db.transaction(async (tx) => {
          await tx.run("INSERT INTO things (name) VALUES (?)", "kept?");
          await tx.run("UPDATE counter SET n = n + 1 WHERE id = 'hits'");
          throw failure;
        }),
      );
      expect(outcome).to.equal(failure);
      expect(await db.all("SELECT name FROM things")).to.deep.equal([]);
      expect(await db.get("SELECT n FROM counter")).to.deep.equal({ n: 0 });
    });

    it("rolls back a transaction whose statement fails, and the database stays usable", async () => {
      await db.run("INSERT INTO things (name) VALUES (?)", "taken");
      const outcome = await rejectionOf(
        db.transaction(async (tx) => {
          await tx.run("INSERT INTO things (name) VALUES (?)", "fresh");
          await tx.run("INSERT INTO things (name) VALUES (?)", "taken");
        }),
      );
      expect(outcome).to.be.instanceOf(Error);
      expect(await db.all("SELECT name FROM things ORDER BY seq")).to.deep.equal([{ name: "taken" }]);
      await db.transaction((tx) => tx.run("INSERT INTO things (name) VALUES (?)", "after"));
      expect(await db.all("SELECT name FROM things ORDER BY seq")).to.deep.equal([{ name: "taken" }, { name: "after" }]);
    });

    it("keeps concurrent transactions whole: no lost increment, and a failed one leaves nothing while the others commit", async () => {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 24 }, (_, i) =>
          db.transaction(async (tx) => {
            await tx.run("UPDATE counter SET n = n + 1 WHERE id = 'hits'");
            await tx.run("INSERT INTO things (name) VALUES (?)", `t${i}`);
            if (i % 3 === 0) throw new Error(`transaction ${i} fails`);
            await tx.run("UPDATE things SET note = ? WHERE name = ?", "done", `t${i}`);
          }),
        ),
      );
      expect(outcomes.filter((o) => o.status === "rejected")).to.have.length(8);
      expect(await db.get("SELECT n FROM counter")).to.deep.equal({ n: 16 });
      const rows = await db.all<{ name: string; note: string }>("SELECT name, note FROM things");
      expect(rows.map((r) => r.name).sort()).to.deep.equal(
        Array.from({ length: 24 }, (_, i) => i)
          .filter((i) => i % 3 !== 0)
          .map((i) => `t${i}`)
          .sort(),
      );
      expect(rows.every((r) => r.note === "done")).to.equal(true);
    });

    it("compares text by bytes, as keyset pagination over ids and ISO timestamps expects", async () => {
      for (const name of ["b-2", "B", "a", "b", "a_b", "2024-01-02T00:00:00.000Z", "2024-01-01T23:59:59.999Z"]) {
        await db.run("INSERT INTO things (name) VALUES (?)", name);
      }
      const rows = await db.all<{ name: string }>("SELECT name FROM things WHERE name > ? ORDER BY name", "2024-01-01T23:59:59.999Z");
      expect(rows.map((r) => r.name)).to.deep.equal(["2024-01-02T00:00:00.000Z", "B", "a", "a_b", "b", "b-2"]);
    });

    it("answers a ping", async () => {
      await db.ping();
    });
  });
}
