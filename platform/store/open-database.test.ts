// Which store a service gets is configuration: STORE, the service's own URL,
// the pool size, DATA_DIR. Mistakes in it fail at start with the variable named.
import { expect } from "chai";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "../telemetry/logger.ts";
import { databaseUrlVariable, openServiceDatabase, redactDatabaseUrl } from "./open-database.ts";

/** The error a promise rejects with; fails the test when it resolves. */
const rejectionOf = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => expect.fail("expected a rejection"),
    (err: unknown) => err as Error,
  );

const migrations = [{ version: 1, name: "t", sql: "CREATE TABLE t (n INTEGER)" }];

describe("opening a service's database", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "shop-open-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("opens SQLite at <DATA_DIR>/<service>.db when STORE is unset, and says so in one log line", async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    const db = await openServiceDatabase({ service: "orders", migrations, env: { DATA_DIR: dir }, logger: createLogger({ destination }) });
    await db.run("INSERT INTO t (n) VALUES (?)", 1);
    await db.close();
    expect(existsSync(join(dir, "orders.db"))).to.equal(true);
    expect(lines).to.have.length(1);
    expect(JSON.parse(lines[0])).to.include({ msg: "database opened", store: "sqlite", service: "orders", path: join(dir, "orders.db") });
  });

  it("prefers the dataDir option to DATA_DIR, and keeps nothing on disk for :memory:", async () => {
    const db = await openServiceDatabase({ service: "users", migrations, env: { STORE: "sqlite", DATA_DIR: dir }, dataDir: ":memory:" });
    await db.close();
    expect(existsSync(join(dir, "users.db"))).to.equal(false);
  });

  it("names the missing variable when STORE=postgres has no URL for the service", async () => {
    const error = await rejectionOf(openServiceDatabase({ service: "orders", migrations, env: { STORE: "postgres", USERS_DATABASE_URL: "postgres://u@h/u" } }));
    expect(error.message).to.match(/ORDERS_DATABASE_URL is not set/);
  });

  it("refuses an unknown STORE and a pool size that is not a positive integer", async () => {
    const unknown = await rejectionOf(openServiceDatabase({ service: "orders", migrations, env: { STORE: "mysql" } }));
    expect(unknown.message).to.match(/STORE must be "sqlite" or "postgres", not "mysql"/);
    for (const size of ["0", "-1", "2.5", "ten"]) {
      const env = { STORE: "postgres", ORDERS_DATABASE_URL: "postgres://orders:secret@127.0.0.1:1/orders", DATABASE_POOL_SIZE: size };
      const error = await rejectionOf(openServiceDatabase({ service: "orders", migrations, env }));
      expect(error.message).to.equal(`DATABASE_POOL_SIZE must be a positive integer, not "${size}"`);
    }
    const perService = await rejectionOf(
      openServiceDatabase({
        service: "orders",
        migrations,
        env: { STORE: "postgres", ORDERS_DATABASE_URL: "postgres://orders:secret@127.0.0.1:1/orders", ORDERS_DATABASE_POOL_SIZE: "0", DATABASE_POOL_SIZE: "5" },
      }),
    );
    expect(perService.message).to.match(/^ORDERS_DATABASE_POOL_SIZE must be/);
  });

  it("derives the URL variable from the service name", () => {
    expect(databaseUrlVariable("orders")).to.equal("ORDERS_DATABASE_URL");
    expect(databaseUrlVariable("gift-cards")).to.equal("GIFT_CARDS_DATABASE_URL");
  });

  it("removes the password from a URL, wherever it is written", () => {
    expect(redactDatabaseUrl("postgres://orders:s3cr%40t@127.0.0.1:55432/orders")).to.equal("postgres://orders@127.0.0.1:55432/orders");
    expect(redactDatabaseUrl("postgres://127.0.0.1/orders?user=orders&password=s3cret")).to.equal("postgres://127.0.0.1/orders?user=orders&password=");
    expect(redactDatabaseUrl("host=127.0.0.1 password=s3cret")).to.equal("(unparsable database URL)");
  });
});
