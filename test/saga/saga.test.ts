// The whole order saga, end to end through the public RPCs, with every
// service running in one process as `make run` runs them.
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { recentSpans } from "@shop/platform";
import { catalog } from "@shop/catalog";
import { inventory } from "@shop/inventory";
import { notifications } from "@shop/notifications";
import { createOrdersModule } from "@shop/orders";
import { createPaymentsModule, createSimulatedProvider } from "@shop/payments";
import type { SimulatedProvider } from "@shop/payments";
import { storefront } from "@shop/storefront";
import { users } from "@shop/users";
import { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import { StorefrontService } from "../../gen/shop/storefront/v1/storefront_pb.js";
import { eventually, placeOrder, signUpShopper, watchToEnd } from "../support/purchase.ts";
import type { Shopper } from "../support/purchase.ts";
import { startTestShop } from "../support/shop.ts";
import type { TestShop } from "../support/shop.ts";
import { errorOf } from "../support/errors.ts";

function shopWith(provider: SimulatedProvider, payments: { timeoutMs?: number; threshold?: number } = {}) {
  return startTestShop([
    users,
    catalog,
    inventory,
    createOrdersModule({ sagaTimeoutMs: 10_000 }),
    createPaymentsModule({ provider, providerTimeoutMs: payments.timeoutMs ?? 1000, breaker: { threshold: payments.threshold ?? 5, halfOpenAfterMs: 60_000 } }),
    notifications,
    storefront,
  ]);
}

describe("the order saga, end to end", () => {
  let t: TestShop;
  let provider: SimulatedProvider;
  let shopper: Shopper;
  const stock = async (sku: string) => (await t.client(InventoryService).getStock({ sku })).stock!;
  const notificationsOf = async (s: Shopper) => (await t.client(NotificationService).listNotifications({}, s.auth)).notifications;

  before(async () => {
    provider = createSimulatedProvider({ latencyMs: 5 });
    t = await shopWith(provider);
    shopper = await signUpShopper(t, "ada");
  });
  after(() => t.stop());

  it("confirms an order of two products live: stock committed, payment captured, the customer notified", async () => {
    const before = { grinder: await stock("hand-grinder"), mug: await stock("latte-mug") };
    // A provider slow enough that the watch starts while the order is still PENDING.
    provider.configure({ latencyMs: 300 });
    const order = await placeOrder(shopper, [
      { sku: "hand-grinder", quantity: 1 },
      { sku: "latte-mug", quantity: 2 },
    ]);
    expect(order.status).to.equal(OrderStatus.PENDING);
    expect(order.total?.unitsMinor).to.equal(7900n + 2n * 1600n);

    const { statuses, order: final } = await watchToEnd(shopper, order.orderId);
    provider.configure({ latencyMs: 5 });
    expect(statuses).to.deep.equal([OrderStatus.PENDING, OrderStatus.CONFIRMED]);
    expect(final.paymentId).to.not.equal("");

    await eventually(async () => ((await stock("latte-mug")).onHand === before.mug.onHand - 2 ? true : undefined), "stock to be committed");
    expect((await stock("hand-grinder")).onHand).to.equal(before.grinder.onHand - 1);
    expect((await stock("latte-mug")).reserved).to.equal(before.mug.reserved);
    await eventually(async () => (provider.counts().captures >= 1 ? true : undefined), "the capture");
    const mine = await eventually(async () => {
      const list = await notificationsOf(shopper);
      return list.find((n) => n.subject.includes("confirmed"));
    }, "the confirmation notification");
    expect(mine.body).to.contain("111.00 EUR");
  });

  it("cancels an order for more than the stock, with the reason, charging nothing", async () => {
    const authorizationsBefore = provider.counts().authorizations;
    const aprons = await stock("barista-apron");
    const order = await placeOrder(shopper, [{ sku: "barista-apron", quantity: aprons.available + 1 }]);
    const { order: final } = await watchToEnd(shopper, order.orderId);
    expect(final.status).to.equal(OrderStatus.CANCELLED);
    expect(final.cancelReason).to.equal("out of stock: barista-apron");
    expect((await stock("barista-apron")).available).to.equal(aprons.available);
    expect(provider.counts().authorizations).to.equal(authorizationsBefore);
    await eventually(async () => (await notificationsOf(shopper)).find((n) => n.body.includes("out of stock: barista-apron")), "the cancellation notification");
  });

  it("cancels an order whose payment is declined and releases its stock", async () => {
    const before = await stock("moka-pot-6-cup");
    const order = await placeOrder(shopper, [{ sku: "moka-pot-6-cup", quantity: 1 }], "pm_card_declined");
    const { order: final } = await watchToEnd(shopper, order.orderId);
    expect(final.status).to.equal(OrderStatus.CANCELLED);
    expect(final.cancelReason).to.equal("payment declined: card declined");
    await eventually(async () => ((await stock("moka-pot-6-cup")).reserved === before.reserved ? true : undefined), "the reservation to be released");
    expect((await stock("moka-pot-6-cup")).onHand).to.equal(before.onHand);
  });

  it("cancels an order paid with pm_card_insufficient_funds, and refuses a payment method outside the closed set before any order exists", async () => {
    const order = await placeOrder(shopper, [{ sku: "descaler", quantity: 1 }], "pm_card_insufficient_funds");
    const { order: final } = await watchToEnd(shopper, order.orderId);
    expect(final.status).to.equal(OrderStatus.CANCELLED);
    expect(final.cancelReason).to.equal("payment declined: insufficient funds");

    const callsBefore = provider.counts().calls;
    const ordersBefore = (await shopper.orders.listOrders({ pageSize: 100 }, shopper.auth)).orders.length;
    const err = await errorOf(placeOrder(shopper, [{ sku: "descaler", quantity: 1 }], "visa"));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage).to.equal('invalid request: payment_method: must be one of "pm_card_ok", "pm_card_declined", "pm_card_insufficient_funds"');
    expect((await shopper.orders.listOrders({ pageSize: 100 }, shopper.auth)).orders).to.have.length(ordersBefore);
    expect(provider.counts().calls).to.equal(callsBefore);
  });

  it("returns the same order for the same idempotency key, and pays once", async () => {
    const key = `key-${randomBytes(4).toString("hex")}`;
    const authorizationsBefore = provider.counts().authorizations;
    const [a, b] = await Promise.all([
      placeOrder(shopper, [{ sku: "descaler", quantity: 1 }], "pm_card_ok", key),
      placeOrder(shopper, [{ sku: "descaler", quantity: 1 }], "pm_card_ok", key),
    ]);
    expect(a.orderId).to.equal(b.orderId);
    const again = await placeOrder(shopper, [{ sku: "descaler", quantity: 1 }], "pm_card_ok", key);
    expect(again.orderId).to.equal(a.orderId);
    await watchToEnd(shopper, a.orderId);
    expect(provider.counts().authorizations).to.equal(authorizationsBefore + 1);
  });

  it("never oversells when many customers race for the last items", async () => {
    const sku = "barista-apron";
    const start = await stock(sku);
    const customers = await Promise.all(Array.from({ length: start.available + 5 }, (_, i) => signUpShopper(t, `racer${i}`)));
    const placed = await Promise.all(customers.map((c) => placeOrder(c, [{ sku, quantity: 1 }])));
    const finals = await Promise.all(placed.map((o, i) => watchToEnd(customers[i], o.orderId)));
    const confirmed = finals.filter((f) => f.order.status === OrderStatus.CONFIRMED);
    const cancelled = finals.filter((f) => f.order.status === OrderStatus.CANCELLED);
    expect(confirmed).to.have.length(start.available);
    expect(cancelled).to.have.length(5);
    for (const c of cancelled) expect(c.order.cancelReason).to.equal(`out of stock: ${sku}`);
    await eventually(async () => ((await stock(sku)).onHand === 0 ? true : undefined), "the stock to be committed");
    expect((await stock(sku)).reserved).to.equal(0);
  });

  it("lets a customer read only their own orders", async () => {
    const other = await signUpShopper(t, "mallory");
    const order = await placeOrder(shopper, [{ sku: "digital-scale", quantity: 1 }]);
    expect((await errorOf(other.orders.getOrder({ orderId: order.orderId }, other.auth))).code).to.equal(Code.NotFound);
    expect((await errorOf(other.orders.cancelOrder({ orderId: order.orderId }, other.auth))).code).to.equal(Code.NotFound);
    const listed = await other.orders.listOrders({}, other.auth);
    expect(listed.orders.map((o) => o.orderId)).to.not.include(order.orderId);
    expect((await errorOf(shopper.orders.getOrder({ orderId: order.orderId }))).code).to.equal(Code.Unauthenticated);
    await watchToEnd(shopper, order.orderId);
  });

  it("shows the order's whole trace: every service that touched it", async () => {
    const traceId = randomBytes(16).toString("hex");
    const traced = { headers: { ...shopper.auth.headers, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` } };
    const { order } = await shopper.orders.createOrder({ idempotencyKey: `trace-${traceId}`, items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, traced);
    await watchToEnd(shopper, order!.orderId);
    const services = await eventually(async () => {
      const seen = new Set(recentSpans.ofTrace(traceId).map((s) => String(s.attributes["shop.service"] ?? "")));
      return ["orders", "catalog", "inventory", "payments", "notifications"].every((name) => seen.has(name)) ? seen : undefined;
    }, "spans from every service in the order's trace");
    expect([...services]).to.include.members(["orders", "catalog", "inventory", "payments", "notifications"]);
  });

  it("shows the customer's profile page with their recent orders", async () => {
    const { page } = await t.client(StorefrontService).getProfilePage({}, shopper.auth);
    expect(page?.user?.status?.degraded).to.equal(false);
    expect(page?.recentOrders?.orders.length).to.be.greaterThan(0);
    expect(page?.recentOrders?.orders.every((o) => o.userId === shopper.userId)).to.equal(true);
  });
});

describe("the order saga when the payment provider misbehaves", () => {
  it("cancels with the reason when the provider is slower than the payments timeout", async () => {
    const provider = createSimulatedProvider({ latencyMs: 600 });
    const t = await shopWith(provider, { timeoutMs: 150 });
    try {
      const shopper = await signUpShopper(t);
      const order = await placeOrder(shopper, [{ sku: "latte-mug", quantity: 1 }]);
      const { order: final } = await watchToEnd(shopper, order.orderId);
      expect(final.status).to.equal(OrderStatus.CANCELLED);
      expect(final.cancelReason).to.match(/payment provider unavailable: timed out/);
    } finally {
      await t.stop();
    }
  });

  it("fails payments fast while the circuit breaker is open, and the saga records why", async () => {
    const provider = createSimulatedProvider({ latencyMs: 1, down: true });
    const t = await shopWith(provider, { threshold: 3 });
    try {
      const shopper = await signUpShopper(t);
      const reasons: string[] = [];
      for (let i = 0; i < 3; i++) {
        const order = await placeOrder(shopper, [{ sku: "latte-mug", quantity: 1 }]);
        reasons.push((await watchToEnd(shopper, order.orderId)).order.cancelReason);
      }
      expect(reasons.every((r) => r.startsWith("payment provider unavailable"))).to.equal(true);
      const callsWhenOpened = provider.counts().calls;
      provider.configure({ down: false });
      const order = await placeOrder(shopper, [{ sku: "latte-mug", quantity: 1 }]);
      const { order: final } = await watchToEnd(shopper, order.orderId);
      expect(final.status).to.equal(OrderStatus.CANCELLED);
      expect(final.cancelReason).to.equal("payment provider unavailable: circuit open");
      expect(provider.counts().calls).to.equal(callsWhenOpened);
    } finally {
      await t.stop();
    }
  });
});
