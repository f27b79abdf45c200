import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { StockRejectedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import type { CreateOrderItem, Order } from "../../gen/shop/orders/v1/orders_pb.js";
import { PaymentAuthorizedSchema, PaymentDeclinedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import { createEventProbe } from "../../test/support/event-probe.ts";
import type { EventProbe } from "../../test/support/event-probe.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { catalog } from "../catalog/index.ts";
import { createOrdersModule, orders } from "./index.ts";
import { errorOf } from "../../test/support/errors.ts";

type Auth = { headers: { authorization: string } };
type Items = Array<Pick<CreateOrderItem, "sku" | "quantity">>;

const orderEvents = [OrderCreatedSchema, OrderConfirmedSchema, OrderCancelledSchema];

describe("orders service", () => {
  let t: TestShop;
  let probe: EventProbe;
  before(async () => {
    probe = createEventProbe(orderEvents);
    // A fallback poll longer than any wait here: WatchOrder must learn of
    // changes from the in-process announcement (the poll has its own test).
    t = await startTestShop([catalog, createOrdersModule({ watchPollMs: 60_000 }), probe.module]);
  });
  after(() => t.stop());

  const client = () => t.client(OrderService);
  async function signedIn(): Promise<{ userId: string; auth: Auth }> {
    const userId = randomUUID();
    return { userId, auth: t.as((await t.tokens.issueUserToken(userId)).token) };
  }
  async function placeOrder(auth: Auth, items: Items = [{ sku: "latte-mug", quantity: 1 }], key = randomUUID(), paymentMethod = "pm_card_ok"): Promise<Order> {
    const { order } = await client().createOrder({ idempotencyKey: key, items, paymentMethod }, auth);
    return order!;
  }
  /**
   * Orders handles events in the order they were emitted (one outbox, one
   * inbox, transactions queued in sequence): once a later PaymentAuthorized
   * has confirmed a fresh order, every event emitted before it was handled.
   */
  async function afterEarlierEventsHandled(): Promise<void> {
    const fence = await placeOrder((await signedIn()).auth);
    await probe.emit(PaymentAuthorizedSchema, { orderId: fence.orderId, paymentId: `pay_${fence.orderId}` });
    await probe.waitFor(OrderConfirmedSchema, (e) => e.orderId === fence.orderId);
  }

  describe("CreateOrder", () => {
    it("prices the items from the catalog, stores the order PENDING and emits OrderCreated with the total", async () => {
      const { userId, auth } = await signedIn();
      const order = await placeOrder(auth, [{ sku: "latte-mug", quantity: 3 }, { sku: "descaler", quantity: 1 }], randomUUID(), "pm_card_ok");
      expect(order.status).to.equal(OrderStatus.PENDING);
      expect(order.userId).to.equal(userId);
      expect(order.total).to.deep.include({ currencyCode: "EUR", unitsMinor: 5690n });
      expect(order.items.map((i) => [i.sku, i.name, i.quantity, i.unitPrice?.unitsMinor, i.lineTotal?.unitsMinor])).to.deep.equal([
        ["latte-mug", "Latte Mug", 3, 1600n, 4800n],
        ["descaler", "Descaler", 1, 890n, 890n],
      ]);

      const created = await probe.waitFor(OrderCreatedSchema, (e) => e.orderId === order.orderId);
      expect(created.userId).to.equal(userId);
      expect(created.paymentMethod).to.equal("pm_card_ok");
      expect(created.total?.unitsMinor).to.equal(5690n);
      expect(created.items.map((i) => [i.sku, i.quantity, i.lineTotal?.unitsMinor])).to.deep.equal([
        ["latte-mug", 3, 4800n],
        ["descaler", 1, 890n],
      ]);

      const { order: read } = await client().getOrder({ orderId: order.orderId }, auth);
      expect(read?.status).to.equal(OrderStatus.PENDING);
      expect(read?.total?.unitsMinor).to.equal(5690n);
    });

    it("returns the first order for a repeated idempotency key, also for 10 concurrent calls, with one OrderCreated", async () => {
      const { userId, auth } = await signedIn();
      const key = randomUUID();
      const first = await placeOrder(auth, [{ sku: "tamper-58mm", quantity: 1 }], key);
      const again = await placeOrder(auth, [{ sku: "tamper-58mm", quantity: 1 }], key);
      expect(again.orderId).to.equal(first.orderId);

      const racedKey = randomUUID();
      const raced = await Promise.all(Array.from({ length: 10 }, () => placeOrder(auth, [{ sku: "knock-box", quantity: 2 }], racedKey)));
      expect(new Set(raced.map((o) => o.orderId)).size).to.equal(1);

      const listed = await client().listOrders({}, auth);
      expect(listed.orders.map((o) => o.orderId).sort()).to.deep.equal([first.orderId, raced[0].orderId].sort());
      await afterEarlierEventsHandled();
      const createdForUser = probe.all(OrderCreatedSchema).filter((e) => e.userId === userId);
      expect(createdForUser.map((e) => e.orderId).sort()).to.deep.equal([first.orderId, raced[0].orderId].sort());
    });

    it("treats the same items in another order as the same request, but answers ALREADY_EXISTS for different items or payment method", async () => {
      const { auth } = await signedIn();
      const key = randomUUID();
      const first = await placeOrder(auth, [{ sku: "latte-mug", quantity: 1 }, { sku: "descaler", quantity: 2 }], key);
      const reordered = await placeOrder(auth, [{ sku: "descaler", quantity: 2 }, { sku: "latte-mug", quantity: 1 }], key);
      expect(reordered.orderId).to.equal(first.orderId);

      const otherItems = await errorOf(placeOrder(auth, [{ sku: "latte-mug", quantity: 5 }], key));
      expect(otherItems.code).to.equal(Code.AlreadyExists);
      expect(otherItems.rawMessage).to.contain(first.orderId);
      const otherPayment = await errorOf(placeOrder(auth, [{ sku: "latte-mug", quantity: 1 }, { sku: "descaler", quantity: 2 }], key, "pm_card_declined"));
      expect(otherPayment.code).to.equal(Code.AlreadyExists);
    });

    it("lets two users use the same idempotency key for their own orders", async () => {
      const a = await signedIn();
      const b = await signedIn();
      const key = randomUUID();
      const ofA = await placeOrder(a.auth, [{ sku: "latte-mug", quantity: 1 }], key);
      const ofB = await placeOrder(b.auth, [{ sku: "descaler", quantity: 1 }], key);
      expect(ofB.orderId).not.to.equal(ofA.orderId);
      expect(ofB.userId).to.equal(b.userId);
    });

    it("answers NOT_FOUND naming an unknown SKU, and creates nothing", async () => {
      const { auth } = await signedIn();
      const err = await errorOf(placeOrder(auth, [{ sku: "latte-mug", quantity: 1 }, { sku: "no-such-mug", quantity: 1 }]));
      expect(err.code).to.equal(Code.NotFound);
      expect(err.rawMessage).to.contain("no-such-mug");
      expect((await client().listOrders({}, auth)).orders).to.have.length(0);
    });

    it("answers INVALID_ARGUMENT for a SKU listed twice", async () => {
      const { auth } = await signedIn();
      const err = await errorOf(placeOrder(auth, [{ sku: "latte-mug", quantity: 1 }, { sku: "latte-mug", quantity: 2 }]));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.contain("items[1].sku");
    });

    it("answers INVALID_ARGUMENT listing the valid payment methods for an unknown one, and creates nothing", async () => {
      const { auth } = await signedIn();
      const err = await errorOf(placeOrder(auth, [{ sku: "latte-mug", quantity: 1 }], randomUUID(), "visa"));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.equal('invalid request: payment_method: must be one of "pm_card_ok", "pm_card_declined", "pm_card_insufficient_funds"');
      expect((await client().listOrders({}, auth)).orders).to.have.length(0);
    });

    it("answers UNAUTHENTICATED without a token and PERMISSION_DENIED to a service", async () => {
      const request = { idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" };
      expect((await errorOf(client().createOrder(request))).code).to.equal(Code.Unauthenticated);
      expect((await errorOf(client().listOrders({}))).code).to.equal(Code.Unauthenticated);
      expect((await errorOf(client().getOrder({ orderId: randomUUID() }))).code).to.equal(Code.Unauthenticated);
      const service = t.as(await t.tokens.issueServiceToken("storefront"));
      expect((await errorOf(client().createOrder(request, service))).code).to.equal(Code.PermissionDenied);
    });
  });

  describe("reading and cancelling", () => {
    it("hides a user's orders from another user (NOT_FOUND, not listed, not cancellable) but lets a service read them", async () => {
      const owner = await signedIn();
      const other = await signedIn();
      const order = await placeOrder(owner.auth);
      expect((await errorOf(client().getOrder({ orderId: order.orderId }, other.auth))).code).to.equal(Code.NotFound);
      expect((await errorOf(client().cancelOrder({ orderId: order.orderId }, other.auth))).code).to.equal(Code.NotFound);
      expect((await client().listOrders({}, other.auth)).orders).to.have.length(0);
      expect((await client().getOrder({ orderId: order.orderId }, owner.auth)).order?.status).to.equal(OrderStatus.PENDING);

      const service = t.as(await t.tokens.issueServiceToken("storefront"));
      expect((await client().getOrder({ orderId: order.orderId }, service)).order?.userId).to.equal(owner.userId);
      expect((await errorOf(client().getOrder({ orderId: randomUUID() }, owner.auth))).code).to.equal(Code.NotFound);
    });

    it("lists the caller's orders newest first, a page at a time, each exactly once", async () => {
      const { auth } = await signedIn();
      const placed: string[] = [];
      for (let i = 0; i < 5; i++) placed.push((await placeOrder(auth)).orderId);
      const seen: string[] = [];
      let token = "";
      let pages = 0;
      do {
        const page = await client().listOrders({ pageSize: 2, pageToken: token }, auth);
        seen.push(...page.orders.map((o) => o.orderId));
        token = page.nextPageToken;
        pages++;
      } while (token !== "" && pages < 10);
      expect(seen).to.deep.equal([...placed].reverse());
      expect(pages).to.equal(3);
      expect((await errorOf(client().listOrders({ pageToken: "made-up" }, auth))).code).to.equal(Code.InvalidArgument);
    });

    it("cancels a PENDING order with the default reason, emits OrderCancelled, and returns it unchanged when cancelled again", async () => {
      const { userId, auth } = await signedIn();
      const order = await placeOrder(auth);
      const { order: cancelled } = await client().cancelOrder({ orderId: order.orderId }, auth);
      expect(cancelled?.status).to.equal(OrderStatus.CANCELLED);
      expect(cancelled?.cancelReason).to.equal("cancelled by customer");
      const event = await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === order.orderId);
      expect(event).to.deep.include({ userId, reason: "cancelled by customer", reservationId: order.orderId, paymentId: "" });

      const { order: again } = await client().cancelOrder({ orderId: order.orderId, reason: "changed my mind" }, auth);
      expect(again?.cancelReason).to.equal("cancelled by customer");
      expect(again?.updatedAt).to.deep.equal(cancelled?.updatedAt);
      await afterEarlierEventsHandled();
      expect(probe.all(OrderCancelledSchema).filter((e) => e.userId === userId)).to.have.length(1);
    });

    it("keeps the customer's own cancel reason", async () => {
      const { auth } = await signedIn();
      const order = await placeOrder(auth);
      const { order: cancelled } = await client().cancelOrder({ orderId: order.orderId, reason: "ordered by mistake" }, auth);
      expect(cancelled?.cancelReason).to.equal("ordered by mistake");
      expect((await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === order.orderId)).reason).to.equal("ordered by mistake");
    });

    it("answers FAILED_PRECONDITION when cancelling a CONFIRMED order", async () => {
      const { auth } = await signedIn();
      const order = await placeOrder(auth);
      await probe.emit(PaymentAuthorizedSchema, { orderId: order.orderId, paymentId: "pay_confirmed" });
      await probe.waitFor(OrderConfirmedSchema, (e) => e.orderId === order.orderId);
      const err = await errorOf(client().cancelOrder({ orderId: order.orderId }, auth));
      expect(err.code).to.equal(Code.FailedPrecondition);
      expect((await client().getOrder({ orderId: order.orderId }, auth)).order?.status).to.equal(OrderStatus.CONFIRMED);
    });
  });

  describe("the saga", () => {
    it("confirms the order on PaymentAuthorized and emits OrderConfirmed with the payment, reservation and total", async () => {
      const { userId, auth } = await signedIn();
      const order = await placeOrder(auth, [{ sku: "burr-grinder", quantity: 1 }]);
      await probe.emit(PaymentAuthorizedSchema, { orderId: order.orderId, paymentId: "pay_123", amount: { currencyCode: "EUR", unitsMinor: 14900n } });
      const confirmed = await probe.waitFor(OrderConfirmedSchema, (e) => e.orderId === order.orderId);
      expect(confirmed).to.deep.include({ userId, paymentId: "pay_123", reservationId: order.orderId });
      expect(confirmed.total).to.deep.include({ currencyCode: "EUR", unitsMinor: 14900n });
      const { order: read } = await client().getOrder({ orderId: order.orderId }, auth);
      expect(read?.status).to.equal(OrderStatus.CONFIRMED);
      expect(read?.paymentId).to.equal("pay_123");
    });

    it("cancels the order on StockRejected with 'out of stock: <sku>', releasing no reservation", async () => {
      const { auth } = await signedIn();
      const order = await placeOrder(auth, [{ sku: "hand-grinder", quantity: 1 }]);
      await probe.emit(StockRejectedSchema, { orderId: order.orderId, reason: "insufficient stock", sku: "hand-grinder" });
      const cancelled = await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === order.orderId);
      expect(cancelled).to.deep.include({ reason: "out of stock: hand-grinder", reservationId: "", paymentId: "" });
      const { order: read } = await client().getOrder({ orderId: order.orderId }, auth);
      expect(read?.status).to.equal(OrderStatus.CANCELLED);
      expect(read?.cancelReason).to.equal("out of stock: hand-grinder");
    });

    it("cancels the order on PaymentDeclined with the payments' reason as written, releasing the reservation", async () => {
      const { auth } = await signedIn();
      const order = await placeOrder(auth);
      const reason = "payment provider unavailable: circuit open";
      await probe.emit(PaymentDeclinedSchema, { orderId: order.orderId, reason });
      const cancelled = await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === order.orderId);
      expect(cancelled).to.deep.include({ reason, reservationId: order.orderId });
      const { order: read } = await client().getOrder({ orderId: order.orderId }, auth);
      expect(read?.status).to.equal(OrderStatus.CANCELLED);
      expect(read?.cancelReason).to.equal(reason);
    });

    it("changes nothing and emits nothing for events about an order already final", async () => {
      const { userId, auth } = await signedIn();
      const confirmed = await placeOrder(auth);
      const cancelled = await placeOrder(auth);
      await probe.emit(PaymentAuthorizedSchema, { orderId: confirmed.orderId, paymentId: "pay_first" });
      await probe.emit(StockRejectedSchema, { orderId: cancelled.orderId, reason: "insufficient stock", sku: "latte-mug" });
      await probe.waitFor(OrderConfirmedSchema, (e) => e.orderId === confirmed.orderId);
      await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === cancelled.orderId);
      const before = [(await client().getOrder({ orderId: confirmed.orderId }, auth)).order, (await client().getOrder({ orderId: cancelled.orderId }, auth)).order];

      await probe.emit(PaymentDeclinedSchema, { orderId: confirmed.orderId, reason: "payment declined: card declined" });
      await probe.emit(StockRejectedSchema, { orderId: confirmed.orderId, reason: "insufficient stock", sku: "latte-mug" });
      await probe.emit(PaymentAuthorizedSchema, { orderId: confirmed.orderId, paymentId: "pay_second" });
      await probe.emit(PaymentAuthorizedSchema, { orderId: cancelled.orderId, paymentId: "pay_late" });
      await afterEarlierEventsHandled();

      const after = [(await client().getOrder({ orderId: confirmed.orderId }, auth)).order, (await client().getOrder({ orderId: cancelled.orderId }, auth)).order];
      expect(after).to.deep.equal(before);
      expect(after[0]?.paymentId).to.equal("pay_first");
      expect(probe.all(OrderConfirmedSchema).filter((e) => e.userId === userId).map((e) => e.orderId)).to.deep.equal([confirmed.orderId]);
      expect(probe.all(OrderCancelledSchema).filter((e) => e.userId === userId).map((e) => e.orderId)).to.deep.equal([cancelled.orderId]);
    });
  });

  describe("WatchOrder", () => {
    it("streams the PENDING order, then CONFIRMED when payment is authorized, then ends", async () => {
      const { auth } = await signedIn();
      const order = await placeOrder(auth);
      const stream = client().watchOrder({ orderId: order.orderId }, { ...auth, timeoutMs: 5000 })[Symbol.asyncIterator]();
      const first = await stream.next();
      expect(first.done).to.equal(false);
      expect(first.value?.order?.status).to.equal(OrderStatus.PENDING);

      await probe.emit(PaymentAuthorizedSchema, { orderId: order.orderId, paymentId: "pay_watch" });
      const second = await stream.next();
      expect(second.value?.order?.status).to.equal(OrderStatus.CONFIRMED);
      expect(second.value?.order?.paymentId).to.equal("pay_watch");
      expect((await stream.next()).done).to.equal(true);
    });

    it("sends one message for an order already final and ends; hides another user's order", async () => {
      const owner = await signedIn();
      const order = await placeOrder(owner.auth);
      await client().cancelOrder({ orderId: order.orderId }, owner.auth);
      const messages = [];
      for await (const m of client().watchOrder({ orderId: order.orderId }, { ...owner.auth, timeoutMs: 5000 })) messages.push(m);
      expect(messages.map((m) => m.order?.status)).to.deep.equal([OrderStatus.CANCELLED]);

      const other = await signedIn();
      const watching = (async () => {
        for await (const _ of client().watchOrder({ orderId: order.orderId }, { ...other.auth, timeoutMs: 5000 })) break;
      })();
      expect((await errorOf(watching)).code).to.equal(Code.NotFound);
    });
  });
});

describe("orders service without a reachable catalog", () => {
  let t: TestShop;
  before(async () => {
    t = await startTestShop([orders]);
  });
  after(() => t.stop());

  it("answers UNAVAILABLE 'catalog unavailable, try again' and creates nothing", async () => {
    const auth = t.as((await t.tokens.issueUserToken(randomUUID())).token);
    const client = t.client(OrderService);
    const err = await errorOf(client.createOrder({ idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth));
    expect(err.code).to.equal(Code.Unavailable);
    expect(err.rawMessage).to.equal("catalog unavailable, try again");
    expect((await client.listOrders({}, auth)).orders).to.have.length(0);
  });
});

describe("orders saga timeout", () => {
  let t: TestShop;
  let probe: EventProbe;
  before(async () => {
    probe = createEventProbe(orderEvents);
    t = await startTestShop([catalog, createOrdersModule({ sagaTimeoutMs: 300, sagaSweepMs: 50 }), probe.module]);
  });
  after(() => t.stop());

  it("cancels an order stuck in PENDING past the timeout, with OrderCancelled releasing its reservation", async () => {
    const auth = t.as((await t.tokens.issueUserToken(randomUUID())).token);
    const client = t.client(OrderService);
    const { order } = await client.createOrder({ idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
    const cancelled = await probe.waitFor(OrderCancelledSchema, (e) => e.orderId === order!.orderId, 5000);
    expect(cancelled).to.deep.include({ reason: "timed out waiting for stock and payment", reservationId: order!.orderId });
    const { order: read } = await client.getOrder({ orderId: order!.orderId }, auth);
    expect(read?.status).to.equal(OrderStatus.CANCELLED);
    expect(read?.cancelReason).to.equal("timed out waiting for stock and payment");
    expect(timestampMs(read!.updatedAt!) - timestampMs(read!.createdAt!)).to.be.at.least(300);
  });
});

describe("WatchOrder across replicas", () => {
  let dataDir: string;
  let writer: TestShop;
  let watcher: TestShop;
  before(async () => {
    // Two instances of orders on one database, as two replicas would be: a
    // change made by one is not announced in the other's process.
    dataDir = mkdtempSync(join(tmpdir(), "orders-replicas-"));
    writer = await startTestShop([catalog, orders], { dataDir });
    watcher = await startTestShop([createOrdersModule({ watchPollMs: 100 })], { dataDir });
  });
  after(async () => {
    await watcher.stop();
    await writer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("sees a status change made by another replica through its fallback poll", async () => {
    const userId = randomUUID();
    const { token } = await writer.tokens.issueUserToken(userId);
    const { order } = await writer.client(OrderService).createOrder(
      { idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" },
      writer.as(token),
    );
    const stream = watcher.client(OrderService).watchOrder({ orderId: order!.orderId }, { ...watcher.as(token), timeoutMs: 5000 })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.order?.status).to.equal(OrderStatus.PENDING);
    await writer.client(OrderService).cancelOrder({ orderId: order!.orderId }, writer.as(token));
    expect((await stream.next()).value?.order?.status).to.equal(OrderStatus.CANCELLED);
    expect((await stream.next()).done).to.equal(true);
  });
});
