// Drill: the shop is SIGKILLed while its payments consumer is in the middle
// of a batch (the provider is slow, so authorizations are in flight: asked,
// not yet recorded nor acknowledged). Started again on the same databases and
// stream, JetStream redelivers what was never acknowledged once the ack wait
// has passed, and the work completes exactly once.
import { expect } from "chai";
import { Client } from "pg";
import { auditSaga, waitUntilSettled } from "./saga-audit.ts";
import { createDrillData, signUpCustomers, startDrillInfra, startDrillShop } from "./drill-shop.ts";
import type { DrillInfra, DrillShop } from "./drill-shop.ts";
import { placeOrders, planOrders } from "./order-load.ts";
import type { Outcome } from "./order-load.ts";

const ORDERS = 40;
const ACK_WAIT_MS = 2000;

/** Orders whose authorization payments has started (the provider was asked) but not recorded. */
async function authorizationsInFlight(paymentsUrl: string): Promise<string[]> {
  const client = new Client({ connectionString: paymentsUrl });
  client.on("error", () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ order_id: string }>(
      "SELECT order_id FROM pending_orders WHERE authorize_started_at IS NOT NULL AND order_id NOT IN (SELECT order_id FROM payments)",
    );
    return rows.map((r) => r.order_id);
  } finally {
    await client.end();
  }
}

describe("fault drill: a consumer is killed in the middle of a batch", function () {
  this.timeout(90_000);
  let infra: DrillInfra;
  let shop: DrillShop | undefined;

  before(async () => {
    infra = await startDrillInfra();
  });
  after(async () => {
    await shop?.kill();
    await infra?.dispose();
  });

  it("redelivers the unacknowledged events to the restarted shop, which completes them once", async () => {
    const data = await createDrillData(infra);
    const env = { EVENT_ACK_WAIT_MS: String(ACK_WAIT_MS) };
    // A slow provider: each authorization keeps its handler busy for 1.5 s.
    shop = await startDrillShop(data, { ...env, PAYMENT_PROVIDER_LATENCY_MS: "1500" });
    const first = shop;
    const customers = await signUpCustomers(first, 4);
    const plan = planOrders(ORDERS, customers.length);
    const placed = await placeOrders(() => first, customers, plan, { concurrency: 8 });

    // Kill once a full batch of authorizations is in flight.
    let inFlight: string[] = [];
    const end = Date.now() + 20_000;
    while ((inFlight = await authorizationsInFlight(data.databases.urls.payments)).length < 4) {
      if (Date.now() > end) throw new Error(`payments never had a batch in flight (${inFlight.length})`);
      await new Promise((r) => setTimeout(r, 25));
    }
    await first.kill();
    const killedAt = Date.now();
    expect((await first.process.exited).signal).to.equal("SIGKILL");
    // What the dead process left: authorizations asked for, never recorded.
    const leftBehind = await authorizationsInFlight(data.databases.urls.payments);
    expect(leftBehind.length).to.be.at.least(4);

    shop = await startDrillShop(data, env);
    const second = shop;
    const settleMs = await waitUntilSettled(second, data.databases.urls.orders, 45_000);

    const expected = new Map<string, Outcome>(plan.map((o) => [placed.orderIds.get(o.key)!, o.expected]));
    const audit = await auditSaga(data.databases.urls, { expected });
    console.log(
      `      killed with ${leftBehind.length} authorizations in flight; the restarted shop settled ${Date.now() - killedAt} ms after the kill (${settleMs} ms of waiting); ` +
        `${audit.confirmed} confirmed, ${audit.cancelled} cancelled`,
    );
    expect(audit.problems.slice(0, 20)).to.deep.equal([]);
    expect(audit.orders).to.equal(ORDERS);
    expect(audit.confirmed).to.equal(plan.filter((o) => o.expected === "CONFIRMED").length);
    expect(audit.deadLetters).to.deep.equal([]);
    // The restarted process is the one that recorded each authorization left behind.
    const recordedAfter = new Set(second.process.logs.filter((l) => l.msg === "payment authorization recorded").map((l) => l.order_id as string));
    expect(leftBehind.filter((id) => !recordedAfter.has(id))).to.deep.equal([]);
  });
});
