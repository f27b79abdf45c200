// Drill: nats-server crashes and comes back while 2,000 orders go through
// the saga. Orders keep being accepted (they only need PostgreSQL; their
// events wait in the outboxes), and once JetStream is back every order
// reaches its final state with each effect done exactly once.
import { expect } from "chai";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { auditSaga, waitUntilSettled } from "./saga-audit.ts";
import { createDrillData, signUpCustomers, startDrillInfra, startDrillShop } from "./drill-shop.ts";
import type { DrillInfra, DrillShop } from "./drill-shop.ts";
import { placeOrders, planOrders } from "./order-load.ts";
import type { Outcome } from "./order-load.ts";

const ORDERS = 2000;
const CUSTOMERS = 20;
const OUTAGE_MS = 2000;

/** Messages the stream holds: each event stored once (the duplicate window drops a second publish of an id). */
async function storedEvents(url: string, stream: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

describe("fault drill: nats-server restarts while orders flow", function () {
  this.timeout(150_000);
  let infra: DrillInfra;
  let shop: DrillShop | undefined;

  before(async () => {
    infra = await startDrillInfra();
  });
  after(async () => {
    await shop?.kill();
    await infra?.dispose();
  });

  it("loses no event and repeats no effect across a SIGKILL of nats-server under 2,000 orders", async () => {
    const data = await createDrillData(infra);
    shop = await startDrillShop(data);
    const customers = await signUpCustomers(shop, CUSTOMERS);
    const plan = planOrders(ORDERS, CUSTOMERS);
    const started = Date.now();

    let outage: Promise<{ at: number; downMs: number }> | undefined;
    const placed = await placeOrders(() => shop!, customers, plan, {
      concurrency: 24,
      onPlaced(n) {
        // A quarter of the way in, when every consumer and relay is busy.
        if (n < ORDERS / 4 || outage) return;
        outage = (async () => {
          const at = Date.now() - started;
          await infra.nats.stop("SIGKILL");
          const down = Date.now();
          await new Promise((r) => setTimeout(r, OUTAGE_MS));
          await infra.nats.start();
          return { at, downMs: Date.now() - down };
        })();
      },
    });
    const placedMs = Date.now() - started;
    expect(outage, "the outage happened while orders were placed").to.not.equal(undefined);
    const { at, downMs } = await outage!;
    const settleMs = await waitUntilSettled(shop, data.databases.urls.orders, 90_000);

    const expected = new Map<string, Outcome>(plan.map((o) => [placed.orderIds.get(o.key)!, o.expected]));
    const audit = await auditSaga(data.databases.urls, { expected });
    const wantConfirmed = plan.filter((o) => o.expected === "CONFIRMED").length;
    const stored = await storedEvents(infra.nats.url, data.stream);
    const relayRetries = shop.process.logs.filter((l) => l.msg === "outbox relay could not publish; retrying").length;
    console.log(
      `      nats-server killed after ${at} ms for ${downMs} ms; ${ORDERS} orders placed in ${placedMs} ms, settled ${settleMs} ms later; ` +
        `${audit.confirmed} confirmed, ${audit.cancelled} cancelled; ${audit.emitted} events emitted, ${stored} in the stream; ${relayRetries} relay retries; ` +
        `CreateOrder retries: ${JSON.stringify(Object.fromEntries(placed.failures))}`,
    );
    expect(audit.problems.slice(0, 20)).to.deep.equal([]);
    expect(audit.orders).to.equal(ORDERS);
    expect(placed.orderIds.size).to.equal(ORDERS);
    expect(audit.confirmed).to.equal(wantConfirmed);
    expect(audit.cancelled).to.equal(ORDERS - wantConfirmed);
    expect(audit.deadLetters).to.deep.equal([]);
    expect(audit.unpublished).to.equal(0);
    expect(audit.strayNotifications).to.equal(0);
    // Every event any service emitted is in the stream exactly once: none lost with the server, none doubled by a relay's retry.
    expect(stored).to.equal(audit.emitted);
    // The drill did what it says: the shop saw the server go and come back.
    const msgs = shop.process.logs.map((l) => l.msg);
    expect(msgs).to.include("NATS connection lost; reconnecting");
    expect(msgs).to.include("NATS connection back");
    expect(relayRetries, "relays held events in the outboxes while the server was away").to.be.above(0);
  });
});
