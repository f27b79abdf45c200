// Drill: poison events on the shop's JetStream stream. One decodes but its
// handlers can never succeed (a forged OrderConfirmed for an order that was
// cancelled: inventory has released its stock, payments has no authorization
// to capture); one cannot even be decoded. Each lands in the consuming
// services' dead letters with its error (the first after exactly
// EVENT_MAX_ATTEMPTS attempts, the second at once), and the orders placed
// behind them on the same subjects go through as if nothing happened.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { Client } from "pg";
import { OrderConfirmedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { auditSaga, waitUntilSettled } from "./saga-audit.ts";
import { createDrillData, signUpCustomers, startDrillInfra, startDrillShop } from "./drill-shop.ts";
import type { DrillData, DrillInfra, DrillShop } from "./drill-shop.ts";
import { placeOrders, planOrders } from "./order-load.ts";
import type { Outcome, PlannedOrder } from "./order-load.ts";

const MAX_ATTEMPTS = 4;
const ORDERS_BEHIND = 30;

/** Publishes straight onto the shop's stream, as a buggy or hostile producer would. */
async function publishRaw(infra: DrillInfra, data: DrillData, type: string, payload: Uint8Array, eventId: string): Promise<void> {
  const nc = await connect({ servers: infra.nats.url });
  try {
    const h = headers();
    h.set("Shop-Event-Type", type);
    h.set("Shop-Event-Source", "fault-drill");
    await jetstream(nc).publish(`${data.subjectPrefix}.${type}`, payload, { msgID: eventId, headers: h });
  } finally {
    await nc.close();
  }
}

async function orderStatus(ordersUrl: string, orderId: string): Promise<string | undefined> {
  const client = new Client({ connectionString: ordersUrl });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query<{ status: string }>("SELECT status FROM orders WHERE order_id = $1", [orderId])).rows[0]?.status;
  } finally {
    await client.end();
  }
}

describe("fault drill: poison events", function () {
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

  it("dead-letters them with their errors after the bounded attempts, and handles the events behind them", async () => {
    const data = await createDrillData(infra);
    shop = await startDrillShop(data, { EVENT_MAX_ATTEMPTS: String(MAX_ATTEMPTS) });
    const running = shop;
    const customers = await signUpCustomers(running, 3);

    // The victim: an order declined by the card, cancelled, its stock released.
    const victimPlan: PlannedOrder = { key: randomUUID(), customer: 0, sku: "paper-filters-100", quantity: 1, paymentMethod: "pm_card_declined", expected: "CANCELLED" };
    const victim = (await placeOrders(() => running, customers, [victimPlan])).orderIds.get(victimPlan.key)!;
    const end = Date.now() + 15_000;
    while ((await orderStatus(data.databases.urls.orders, victim)) !== "CANCELLED") {
      if (Date.now() > end) throw new Error(`order ${victim} was never cancelled`);
      await new Promise((r) => setTimeout(r, 25));
    }

    // A forged confirmation for it, to someone who is no customer, and bytes that are no event at all.
    const forged = `poison-${randomUUID()}`;
    const garbage = `garbage-${randomUUID()}`;
    const forgedPayload = toBinary(OrderConfirmedSchema, create(OrderConfirmedSchema, { orderId: victim, userId: "poison-user", reservationId: victim, paymentId: "" }));
    await publishRaw(infra, data, OrderConfirmedSchema.typeName, forgedPayload, forged);
    await publishRaw(infra, data, "shop.orders.v1.OrderCreated", new Uint8Array([0x0a, 0xff, 0xff, 0xff]), garbage);

    // Orders placed behind them: their OrderCreated and OrderConfirmed go through the same durables,
    // which must not stay stuck on the poison (waitUntilSettled needs every durable fully acknowledged).
    const plan = planOrders(ORDERS_BEHIND, customers.length);
    const placed = await placeOrders(() => running, customers, plan, { concurrency: 8 });
    await waitUntilSettled(running, data.databases.urls.orders, 45_000);

    const { deadLetters } = await running.events.listDeadLetters({ pageSize: 100 }, await running.operator());
    const summary = deadLetters.map((d) => ({ consumer: d.consumer, eventId: d.eventId, type: d.eventType, attempts: d.attempts, error: d.error })).sort((a, b) => `${a.eventId}${a.consumer}`.localeCompare(`${b.eventId}${b.consumer}`));
    console.log(`      dead letters: ${JSON.stringify(summary.map((d) => `${d.consumer} ${d.type} after ${d.attempts}: ${d.error}`))}`);
    expect(summary).to.have.length(4);
    const [garbageInventory, garbagePayments, forgedInventory, forgedPayments] = summary;
    // The forged confirmation failed every attempt it had, no more and no fewer.
    expect(forgedInventory).to.include({ consumer: "inventory", eventId: forged, type: OrderConfirmedSchema.typeName, attempts: MAX_ATTEMPTS });
    expect(forgedInventory.error).to.equal(`order ${victim} was confirmed but its reservation is RELEASED; its stock is no longer held`);
    expect(forgedPayments).to.include({ consumer: "payments", eventId: forged, type: OrderConfirmedSchema.typeName, attempts: MAX_ATTEMPTS });
    expect(forgedPayments.error).to.match(new RegExp(`^order ${victim} was confirmed but its payment \\S+ is DECLINED$`));
    for (const consumer of ["inventory", "payments"]) {
      const lines = running.process.logs.filter((l) => l.event_id === forged && l.consumer === consumer);
      expect(lines.filter((l) => l.msg === "event handler failed; will retry").map((l) => l.attempts)).to.deep.equal([1, 2, 3]);
      expect(lines.filter((l) => l.msg === "event moved to dead letters")).to.have.length(1);
    }
    // Bytes that can never decode are not retried.
    expect(garbageInventory).to.include({ consumer: "inventory", eventId: garbage, attempts: 1 });
    expect(garbagePayments).to.include({ consumer: "payments", eventId: garbage, attempts: 1 });
    expect(garbageInventory.error).to.match(/^cannot decode shop\.orders\.v1\.OrderCreated: /);

    // Everything behind the poison was handled, each effect once; the victim was left as it was.
    const expected = new Map<string, Outcome>([[victim, "CANCELLED"], ...plan.map((o): [string, Outcome] => [placed.orderIds.get(o.key)!, o.expected])]);
    const audit = await auditSaga(data.databases.urls, { expected });
    expect(audit.problems.slice(0, 20)).to.deep.equal([]);
    expect(audit.orders).to.equal(ORDERS_BEHIND + 1);
    expect(audit.confirmed).to.equal(plan.filter((o) => o.expected === "CONFIRMED").length);
    expect(audit.confirmed).to.be.above(0);
    // Notifications has nothing to refuse in a confirmation: it wrote the forged one to its addressee.
    expect(audit.strayNotifications).to.equal(1);
  });
});
