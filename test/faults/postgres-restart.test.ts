// Drill: PostgreSQL goes down while orders are being created, and comes back.
// The orders service says NOT_SERVING on grpc.health.v1 for as long as it
// cannot reach its database and SERVING again once it can, without a restart
// of the shop; the client retries CreateOrder with the same idempotency key,
// and every order it was answered with is there, exactly once, and final.
import { expect } from "chai";
import { HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";
import { auditSaga, waitUntilSettled } from "./saga-audit.ts";
import { createDrillData, signUpCustomers, startDrillInfra, startDrillShop } from "./drill-shop.ts";
import type { DrillInfra, DrillShop } from "./drill-shop.ts";
import { placeOrders, planOrders } from "./order-load.ts";
import type { Outcome } from "./order-load.ts";

const ORDERS = 300;
const CUSTOMERS = 10;
const OUTAGE_MS = 3000;
const ORDERS_SERVICE = "shop.orders.v1.OrderService";
/** DATABASE_HEALTH_INTERVAL_MS the shop runs with in this drill. */
const HEALTH_INTERVAL_MS = 200;

interface Sample {
  readonly at: number;
  readonly status: Status | "error";
}

/** Calls Check every 50 ms until stopped: the orders service's health as a load balancer sees it. */
function watchHealth(shop: DrillShop) {
  const samples: Sample[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      let status: Sample["status"];
      try {
        status = (await shop.health.check({ service: ORDERS_SERVICE }, { timeoutMs: 1000 })).status;
      } catch {
        status = "error";
      }
      samples.push({ at: Date.now(), status });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await done;
    },
    /** Resolves with the time of the first sample at or after `since` with this status. */
    async first(status: Status, since: number, timeoutMs: number): Promise<number> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const found = samples.find((s) => s.at >= since && s.status === status);
        if (found) return found.at;
        if (Date.now() > end) throw new Error(`health of ${ORDERS_SERVICE} never became ${Status[status]} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe("fault drill: PostgreSQL restarts while orders are created", function () {
  this.timeout(120_000);
  let infra: DrillInfra;
  let shop: DrillShop | undefined;

  before(async () => {
    infra = await startDrillInfra();
  });
  after(async () => {
    await shop?.kill();
    await infra?.dispose();
  });

  it("reports NOT_SERVING while the database is down, recovers by itself and loses no committed order", async () => {
    const data = await createDrillData(infra);
    shop = await startDrillShop(data, { DATABASE_HEALTH_INTERVAL_MS: String(HEALTH_INTERVAL_MS) });
    const running = shop;
    const customers = await signUpCustomers(shop, CUSTOMERS);
    const plan = planOrders(ORDERS, CUSTOMERS);
    const health = watchHealth(shop);
    expect((await shop.health.check({ service: ORDERS_SERVICE })).status).to.equal(Status.SERVING);

    const times = { stop: 0, stopped: 0, start: 0, started: 0, notServing: 0, servingAgain: 0 };
    let outage: Promise<void> | undefined;
    const placed = await placeOrders(() => running, customers, plan, {
      concurrency: 8,
      retryForMs: 60_000,
      onPlaced(n) {
        if (n < ORDERS / 3 || outage) return;
        outage = (async () => {
          times.stop = Date.now();
          await infra.pg.stopServer();
          times.stopped = Date.now();
          times.notServing = await health.first(Status.NOT_SERVING, times.stop, 5000);
          await new Promise((r) => setTimeout(r, Math.max(0, times.stop + OUTAGE_MS - Date.now())));
          times.start = Date.now();
          await infra.pg.startServer();
          times.started = Date.now();
          times.servingAgain = await health.first(Status.SERVING, times.start, 15_000);
        })();
      },
    });
    expect(outage, "the outage happened while orders were created").to.not.equal(undefined);
    await outage;
    await health.stop();

    // Health followed the database: NOT_SERVING soon after it went, every
    // answer NOT_SERVING until it was back, SERVING soon after, and since.
    expect(times.notServing - times.stop, "ms until NOT_SERVING").to.be.below(3000);
    const whileDown = health.samples.filter((s) => s.at >= times.notServing && s.at <= times.start);
    expect(whileDown.length).to.be.above(10);
    expect(whileDown.every((s) => s.status === Status.NOT_SERVING), `statuses while down: ${[...new Set(whileDown.map((s) => String(s.status)))]}`).to.equal(true);
    expect(times.servingAgain - times.started, "ms from PostgreSQL ready to SERVING").to.be.below(5000);
    expect(health.samples.filter((s) => s.at > times.servingAgain).every((s) => s.status === Status.SERVING)).to.equal(true);
    // The outage was felt by the client, and retrying with the same key got through.
    expect(placed.retriedKeys).to.be.above(0);

    const settleMs = await waitUntilSettled(shop, data.databases.urls.orders, 60_000);
    const expected = new Map<string, Outcome>(plan.map((o) => [placed.orderIds.get(o.key)!, o.expected]));
    const audit = await auditSaga(data.databases.urls, { expected });
    console.log(
      `      PostgreSQL down ${times.started - times.stop} ms (stop took ${times.stopped - times.stop} ms, start ${times.started - times.start} ms); ` +
        `NOT_SERVING ${times.notServing - times.stop} ms after the stop, for ${times.servingAgain - times.notServing} ms, SERVING ${times.servingAgain - times.started} ms after PostgreSQL was ready; ` +
        `CreateOrder failures retried: ${JSON.stringify(Object.fromEntries(placed.failures))} over ${placed.retriedKeys} keys; settled in ${settleMs} ms; ${audit.confirmed} confirmed, ${audit.cancelled} cancelled`,
    );
    expect(audit.problems.slice(0, 20)).to.deep.equal([]);
    // Every key the client was answered for is one order: retries found the order, never made a second.
    expect(new Set(placed.orderIds.values()).size).to.equal(ORDERS);
    expect(audit.orders).to.equal(ORDERS);
    expect(audit.confirmed).to.equal(plan.filter((o) => o.expected === "CONFIRMED").length);
    expect(audit.deadLetters).to.deep.equal([]);
    expect(audit.unpublished).to.equal(0);
  });
});
