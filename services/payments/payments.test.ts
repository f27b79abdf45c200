import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { getOption } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { StockReservedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import {
  PaymentAuthorizedSchema,
  PaymentCapturedSchema,
  PaymentDeclinedSchema,
  PaymentRefundedSchema,
  PaymentVoidedSchema,
} from "../../gen/shop/payments/v1/events_pb.js";
import { AuthorizePaymentRequestSchema, PaymentService, PaymentStatus } from "../../gen/shop/payments/v1/payments_pb.js";
import { CreateOrderRequestSchema } from "../../gen/shop/orders/v1/orders_pb.js";
import { rules } from "../../gen/mesh/v1/options_pb.js";
import { createEventProbe } from "../../test/support/event-probe.ts";
import type { EventProbe } from "../../test/support/event-probe.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop, TestShopOptions } from "../../test/support/shop.ts";
import { createPaymentsModule, createSimulatedProvider, TEST_PAYMENT_METHODS } from "./index.ts";
import type { PaymentsModuleOptions, SimulatedProvider, SimulatedProviderConfig } from "./index.ts";
import { errorOf } from "../../test/support/errors.ts";

const eur = (unitsMinor: bigint) => ({ currencyCode: "EUR", unitsMinor });

/** Polls a condition every 10 ms, failing after timeoutMs. */
async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Harness {
  t: TestShop;
  probe: EventProbe;
  provider: SimulatedProvider;
  serviceToken: string;
  /** Resolves once every emitted event is published and every received one handled, so "nothing happened" can be asserted. */
  settled(): Promise<void>;
  /** Emits OrderCreated for a new order and returns its id. */
  orderCreated(order?: { totalMinor?: bigint; paymentMethod?: string; orderId?: string }): Promise<string>;
  stockReserved(orderId: string): Promise<string>;
}

async function startPayments(options: {
  provider?: Partial<SimulatedProviderConfig>;
  module?: Omit<PaymentsModuleOptions, "provider">;
  events?: TestShopOptions["events"];
}): Promise<Harness> {
  const provider = createSimulatedProvider({ latencyMs: 0, ...options.provider });
  const probe = createEventProbe([PaymentAuthorizedSchema, PaymentDeclinedSchema, PaymentCapturedSchema, PaymentVoidedSchema, PaymentRefundedSchema]);
  const t = await startTestShop([createPaymentsModule({ provider, ...options.module }), probe.module], { events: options.events });
  const serviceToken = await t.tokens.issueServiceToken("orders");
  const admin = t.client(EventAdminService);
  return {
    t,
    probe,
    provider,
    serviceToken,
    async settled() {
      await waitUntil("every event is delivered and handled", async () => {
        const backlog = await admin.getEventBacklog({}, t.as(serviceToken));
        return backlog.sources.every((s) => s.unpublished === 0) && backlog.consumers.every((c) => c.pending === 0);
      });
    },
    async orderCreated(order = {}) {
      const orderId = order.orderId ?? randomUUID();
      await probe.emit(OrderCreatedSchema, { orderId, userId: randomUUID(), total: eur(order.totalMinor ?? 4990n), paymentMethod: order.paymentMethod ?? "pm_card_ok" });
      return orderId;
    },
    stockReserved: (orderId) => probe.emit(StockReservedSchema, { orderId, reservationId: orderId }),
  };
}

const providerCallsFor = (provider: SimulatedProvider, key: string) => provider.calls.filter((c) => c.idempotencyKey === key);

describe("payments saga", () => {
  let h: Harness;
  before(async () => {
    h = await startPayments({ module: { providerTimeoutMs: 1000 } });
  });
  after(() => h.t.stop());
  const forOrder = (orderId: string) => (e: { orderId: string }) => e.orderId === orderId;

  it("authorizes the order's total once its stock is reserved, emitting PaymentAuthorized with the amount", async () => {
    const orderId = await h.orderCreated({ totalMinor: 12345n });
    await h.stockReserved(orderId);
    const authorized = await h.probe.waitFor(PaymentAuthorizedSchema, forOrder(orderId));
    expect(authorized.amount).to.deep.include({ currencyCode: "EUR", unitsMinor: 12345n });
    const { payment } = await h.t.client(PaymentService).getPayment({ paymentId: authorized.paymentId }, h.t.as(h.serviceToken));
    expect(payment?.status).to.equal(PaymentStatus.AUTHORIZED);
    expect(payment?.orderId).to.equal(orderId);
  });

  it("declines pm_card_declined with the reason 'payment declined: card declined'", async () => {
    const orderId = await h.orderCreated({ paymentMethod: "pm_card_declined" });
    await h.stockReserved(orderId);
    const declined = await h.probe.waitFor(PaymentDeclinedSchema, forOrder(orderId));
    expect(declined.reason).to.equal("payment declined: card declined");
  });

  it("declines an OrderCreated whose payment method is outside the closed set (an event older than the rule) instead of approving it", async () => {
    const orderId = await h.orderCreated({ paymentMethod: "visa" });
    await h.stockReserved(orderId);
    const declined = await h.probe.waitFor(PaymentDeclinedSchema, forOrder(orderId));
    expect(declined.reason).to.equal("payment declined: unknown payment method");
    expect(providerCallsFor(h.provider, `authorize:${orderId}`).map((c) => c.result)).to.deep.equal(["declined"]);
  });

  it("captures the payment when the order is confirmed, emitting PaymentCaptured", async () => {
    const orderId = await h.orderCreated();
    await h.stockReserved(orderId);
    const { paymentId } = await h.probe.waitFor(PaymentAuthorizedSchema, forOrder(orderId));
    await h.probe.emit(OrderConfirmedSchema, { orderId, paymentId, reservationId: orderId, total: eur(4990n) });
    const captured = await h.probe.waitFor(PaymentCapturedSchema, forOrder(orderId));
    expect(captured.paymentId).to.equal(paymentId);
    expect(providerCallsFor(h.provider, `capture:${orderId}`).map((c) => c.result)).to.deep.equal(["done"]);
    const { payment } = await h.t.client(PaymentService).getPayment({ paymentId }, h.t.as(h.serviceToken));
    expect(payment?.status).to.equal(PaymentStatus.CAPTURED);
  });

  it("voids an authorized payment when the order is cancelled, once however often OrderCancelled arrives", async () => {
    const orderId = await h.orderCreated();
    await h.stockReserved(orderId);
    const { paymentId } = await h.probe.waitFor(PaymentAuthorizedSchema, forOrder(orderId));
    await h.probe.emit(OrderCancelledSchema, { orderId, reason: "customer changed their mind", paymentId });
    const voided = await h.probe.waitFor(PaymentVoidedSchema, forOrder(orderId));
    expect(voided.paymentId).to.equal(paymentId);
    await h.probe.emit(OrderCancelledSchema, { orderId, reason: "customer changed their mind", paymentId });
    await h.settled();
    expect(h.probe.all(PaymentVoidedSchema).filter(forOrder(orderId))).to.have.length(1);
    expect(providerCallsFor(h.provider, `void:${orderId}`).map((c) => c.result)).to.deep.equal(["done"]);
  });

  it("never asks the provider for an order cancelled before its stock was reserved", async () => {
    const orderId = await h.orderCreated();
    await h.probe.emit(OrderCancelledSchema, { orderId, reason: "timed out waiting for stock and payment" });
    await h.settled();
    await h.stockReserved(orderId);
    await h.settled();
    expect(providerCallsFor(h.provider, `authorize:${orderId}`)).to.have.length(0);
    expect(h.probe.received.filter((r) => (r.event as { orderId?: string }).orderId === orderId)).to.have.length(0);
  });

  it("never asks the provider when OrderCancelled even came before OrderCreated", async () => {
    const orderId = randomUUID();
    await h.probe.emit(OrderCancelledSchema, { orderId, reason: "out of stock: latte-mug" });
    await h.settled();
    await h.orderCreated({ orderId });
    await h.stockReserved(orderId);
    await h.settled();
    expect(providerCallsFor(h.provider, `authorize:${orderId}`)).to.have.length(0);
    expect(h.probe.received.filter((r) => (r.event as { orderId?: string }).orderId === orderId)).to.have.length(0);
  });

  it("authorizes once with the provider and emits one PaymentAuthorized when StockReserved arrives twice", async () => {
    const orderId = await h.orderCreated();
    const before = h.provider.counts().authorizations;
    await Promise.all([h.stockReserved(orderId), h.stockReserved(orderId)]);
    await h.probe.waitFor(PaymentAuthorizedSchema, forOrder(orderId));
    await h.settled();
    expect(h.provider.counts().authorizations - before).to.equal(1);
    expect(h.probe.all(PaymentAuthorizedSchema).filter(forOrder(orderId))).to.have.length(1);
  });

  it("records and voids an authorization whose order was cancelled while the provider was answering", async () => {
    h.provider.configure({ latencyMs: 300 });
    try {
      const orderId = await h.orderCreated();
      const callsBefore = h.provider.counts().calls;
      await h.stockReserved(orderId);
      await waitUntil("the provider is asked to authorize", () => h.provider.counts().calls > callsBefore);
      await h.probe.emit(OrderCancelledSchema, { orderId, reason: "customer changed their mind" });
      await h.probe.waitFor(PaymentVoidedSchema, forOrder(orderId));
      await h.settled();
      expect(h.probe.all(PaymentAuthorizedSchema).filter(forOrder(orderId))).to.have.length(0);
      expect(providerCallsFor(h.provider, `authorize:${orderId}`).map((c) => c.result)).to.deep.equal(["approved"]);
      expect(providerCallsFor(h.provider, `void:${orderId}`).map((c) => c.result)).to.deep.equal(["done"]);
    } finally {
      h.provider.configure({ latencyMs: 0 });
    }
  });
});

describe("payments saga: StockReserved before OrderCreated", () => {
  let h: Harness;
  // With no RetryLater window, each early attempt is logged as a failed
  // attempt, which shows the handler really ran before OrderCreated arrived.
  before(async () => {
    h = await startPayments({ events: { retryLaterWindowMs: 0, backoffMs: 20, maxAttempts: 50 } });
  });
  after(() => h.t.stop());

  it("waits for OrderCreated without asking the provider, then authorizes the order", async () => {
    const orderId = randomUUID();
    await h.stockReserved(orderId);
    await waitUntil("payments has tried the early StockReserved", () =>
      h.t.logs.some((l) => l.consumer === "payments" && l.type === StockReservedSchema.typeName && String(l.err).includes(orderId)),
    );
    expect(providerCallsFor(h.provider, `authorize:${orderId}`)).to.have.length(0);
    await h.orderCreated({ orderId, totalMinor: 2500n });
    const authorized = await h.probe.waitFor(PaymentAuthorizedSchema, (e) => e.orderId === orderId);
    expect(authorized.amount?.unitsMinor).to.equal(2500n);
  });
});

describe("payment provider resilience", () => {
  it("declines with a reason that says the provider timed out, without waiting for the slow provider", async () => {
    const h = await startPayments({ provider: { latencyMs: 300 }, module: { providerTimeoutMs: 100 } });
    try {
      const orderId = await h.orderCreated();
      const started = performance.now();
      await h.stockReserved(orderId);
      const declined = await h.probe.waitFor(PaymentDeclinedSchema, (e) => e.orderId === orderId);
      const elapsed = performance.now() - started;
      expect(declined.reason).to.equal("payment provider unavailable: timed out after 100 ms");
      expect(elapsed).to.be.below(300);
    } finally {
      await h.t.stop();
    }
  });

  it("opens the circuit after consecutive failures, then fails fast without calling the provider until it half-opens", async () => {
    const h = await startPayments({ provider: { down: true }, module: { breaker: { threshold: 3, halfOpenAfterMs: 400 } } });
    try {
      const declineOf = async () => {
        const orderId = await h.orderCreated();
        await h.stockReserved(orderId);
        return (await h.probe.waitFor(PaymentDeclinedSchema, (e) => e.orderId === orderId)).reason;
      };
      for (let i = 0; i < 3; i++) expect(await declineOf()).to.equal("payment provider unavailable: connection refused");
      expect(h.provider.counts().calls).to.equal(3);
      expect(await declineOf()).to.equal("payment provider unavailable: circuit open");
      expect(await declineOf()).to.equal("payment provider unavailable: circuit open");
      const rpc = await errorOf(
        h.t.client(PaymentService).authorizePayment(
          { idempotencyKey: randomUUID(), orderId: randomUUID(), amount: eur(1000n), paymentMethod: "pm_card_ok" },
          h.t.as(h.serviceToken),
        ),
      );
      expect(rpc.code).to.equal(Code.Unavailable);
      expect(rpc.rawMessage).to.equal("payment provider unavailable: circuit open");
      expect(h.provider.counts().calls, "no call reaches the provider while the circuit is open").to.equal(3);

      // Half-opening is a matter of time, not of an event: wait it out, then one trial call closes the circuit.
      h.provider.configure({ down: false });
      await new Promise((resolve) => setTimeout(resolve, 450));
      const orderId = await h.orderCreated();
      await h.stockReserved(orderId);
      await h.probe.waitFor(PaymentAuthorizedSchema, (e) => e.orderId === orderId);
      expect(h.provider.counts().calls).to.equal(4);
    } finally {
      await h.t.stop();
    }
  });

  it("retries a capture that fails, dead-letters it after the bounded attempts, and captures once retried after recovery", async () => {
    const h = await startPayments({ events: { maxAttempts: 2, backoffMs: 10 } });
    try {
      const orderId = await h.orderCreated();
      await h.stockReserved(orderId);
      const { paymentId } = await h.probe.waitFor(PaymentAuthorizedSchema, (e) => e.orderId === orderId);
      h.provider.configure({ down: true });
      const eventId = await h.probe.emit(OrderConfirmedSchema, { orderId, paymentId, reservationId: orderId, total: eur(4990n) });
      const admin = h.t.client(EventAdminService);
      await waitUntil("the capture is dead-lettered", async () => {
        const { deadLetters } = await admin.listDeadLetters({ consumer: "payments" }, h.t.as(h.serviceToken));
        return deadLetters.some((d) => d.eventId === eventId && d.attempts === 2 && d.error.includes("payment provider unavailable: connection refused"));
      });
      expect(providerCallsFor(h.provider, `capture:${orderId}`).map((c) => c.result)).to.deep.equal(["unavailable", "unavailable"]);

      h.provider.configure({ down: false });
      await admin.retryDeadLetter({ consumer: "payments", eventId }, h.t.as(h.serviceToken));
      await h.probe.waitFor(PaymentCapturedSchema, (e) => e.orderId === orderId);
      expect(h.provider.counts().captures).to.equal(1);
    } finally {
      await h.t.stop();
    }
  });
});

describe("PaymentService RPCs", () => {
  let h: Harness;
  before(async () => {
    h = await startPayments({});
  });
  after(() => h.t.stop());
  const client = () => h.t.client(PaymentService);
  const asService = () => h.t.as(h.serviceToken);
  const authorize = (orderId: string, idempotencyKey = randomUUID(), amountMinor = 3000n, paymentMethod = "pm_card_ok") =>
    client().authorizePayment({ idempotencyKey, orderId, amount: eur(amountMinor), paymentMethod }, asService());

  it("answers a repeated idempotency key with the same payment and no second provider authorization", async () => {
    const orderId = randomUUID();
    const key = randomUUID();
    const first = await authorize(orderId, key);
    const again = await authorize(orderId, key);
    expect(first.payment?.status).to.equal(PaymentStatus.AUTHORIZED);
    expect(again.payment).to.deep.equal(first.payment);
    expect(providerCallsFor(h.provider, `authorize:${orderId}`).map((c) => c.result)).to.deep.equal(["approved"]);
    const authorized = await h.probe.waitFor(PaymentAuthorizedSchema, (e) => e.orderId === orderId);
    expect(authorized.paymentId).to.equal(first.payment?.paymentId);
  });

  it("answers ALREADY_EXISTS when a key is reused for a different request, or the order already has a payment", async () => {
    const orderId = randomUUID();
    const key = randomUUID();
    await authorize(orderId, key, 3000n);
    const reused = await errorOf(authorize(orderId, key, 3001n));
    expect(reused.code).to.equal(Code.AlreadyExists);
    expect(reused.rawMessage).to.contain(key);
    expect((await errorOf(authorize(orderId, randomUUID(), 3000n))).code).to.equal(Code.AlreadyExists);
    expect(h.provider.calls.filter((c) => c.idempotencyKey === `authorize:${orderId}`)).to.have.length(1);
  });

  it("answers a decline with a DECLINED payment and its reason, not an error", async () => {
    const { payment } = await authorize(randomUUID(), randomUUID(), 3000n, "pm_card_insufficient_funds");
    expect(payment?.status).to.equal(PaymentStatus.DECLINED);
    expect(payment?.declineReason).to.equal("insufficient funds");
  });

  it("captures, refunds in parts, and answers FAILED_PRECONDITION for a refund beyond what was captured", async () => {
    const { payment } = await authorize(randomUUID(), randomUUID(), 5000n);
    const paymentId = payment!.paymentId;
    const captureKey = randomUUID();
    const captured = await client().capturePayment({ idempotencyKey: captureKey, paymentId }, asService());
    expect(captured.payment?.status).to.equal(PaymentStatus.CAPTURED);
    expect((await client().capturePayment({ idempotencyKey: captureKey, paymentId }, asService())).payment).to.deep.equal(captured.payment);

    const refundKey = randomUUID();
    const partial = await client().refundPayment({ idempotencyKey: refundKey, paymentId, amount: eur(2000n) }, asService());
    expect(partial.payment?.status).to.equal(PaymentStatus.REFUNDED);
    expect(partial.payment?.refundedAmount?.unitsMinor).to.equal(2000n);
    const replayed = await client().refundPayment({ idempotencyKey: refundKey, paymentId, amount: eur(2000n) }, asService());
    expect(replayed.payment?.refundedAmount?.unitsMinor, "a repeated refund key refunds nothing more").to.equal(2000n);

    const beyond = await errorOf(client().refundPayment({ idempotencyKey: randomUUID(), paymentId, amount: eur(3001n) }, asService()));
    expect(beyond.code).to.equal(Code.FailedPrecondition);
    expect(beyond.rawMessage).to.contain("3000 left to refund");
    const rest = await client().refundPayment({ idempotencyKey: randomUUID(), paymentId }, asService());
    expect(rest.payment?.refundedAmount?.unitsMinor).to.equal(5000n);
    expect((await errorOf(client().refundPayment({ idempotencyKey: randomUUID(), paymentId, amount: eur(1n) }, asService()))).code).to.equal(Code.FailedPrecondition);

    const refunds = h.provider.calls.filter((c) => c.operation === "refund" && c.idempotencyKey.startsWith(`refund:${payment!.orderId}:`));
    expect(refunds.map((c) => c.result)).to.deep.equal(["done", "done"]);
    await h.probe.waitFor(PaymentRefundedSchema, (e) => e.paymentId === paymentId && e.amount?.unitsMinor === 3000n);
  });

  it("voids an authorization, returns a voided payment unchanged, and refuses to capture or refund it", async () => {
    const { payment } = await authorize(randomUUID());
    const paymentId = payment!.paymentId;
    const voided = await client().voidPayment({ idempotencyKey: randomUUID(), paymentId }, asService());
    expect(voided.payment?.status).to.equal(PaymentStatus.VOIDED);
    expect((await client().voidPayment({ idempotencyKey: randomUUID(), paymentId }, asService())).payment?.status).to.equal(PaymentStatus.VOIDED);
    expect((await errorOf(client().capturePayment({ idempotencyKey: randomUUID(), paymentId }, asService()))).code).to.equal(Code.FailedPrecondition);
    expect((await errorOf(client().refundPayment({ idempotencyKey: randomUUID(), paymentId }, asService()))).code).to.equal(Code.FailedPrecondition);
    expect(h.provider.calls.filter((c) => c.idempotencyKey === `void:${payment!.orderId}`)).to.have.length(1);
  });

  it("answers UNAVAILABLE while the provider is down, recording nothing, so the same key succeeds later", async () => {
    const orderId = randomUUID();
    const key = randomUUID();
    h.provider.configure({ down: true });
    try {
      const err = await errorOf(authorize(orderId, key));
      expect(err.code).to.equal(Code.Unavailable);
      expect(err.rawMessage).to.equal("payment provider unavailable: connection refused");
    } finally {
      h.provider.configure({ down: false });
    }
    expect((await authorize(orderId, key)).payment?.status).to.equal(PaymentStatus.AUTHORIZED);
  });

  it("answers INVALID_ARGUMENT listing the valid payment methods for an unknown one, without asking the provider", async () => {
    const callsBefore = h.provider.counts().calls;
    const err = await errorOf(authorize(randomUUID(), randomUUID(), 3000n, "visa"));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage).to.equal('invalid request: payment_method: must be one of "pm_card_ok", "pm_card_declined", "pm_card_insufficient_funds"');
    expect(h.provider.counts().calls).to.equal(callsBefore);
  });

  it("lists in the contracts' closed set exactly the payment methods the simulated provider knows", () => {
    for (const field of [AuthorizePaymentRequestSchema.field.paymentMethod, CreateOrderRequestSchema.field.paymentMethod]) {
      expect(getOption(field, rules).in, field.toString()).to.have.members(Object.keys(TEST_PAYMENT_METHODS)).and.have.length(Object.keys(TEST_PAYMENT_METHODS).length);
    }
  });

  it("answers NOT_FOUND for an unknown payment and PERMISSION_DENIED to a user's token", async () => {
    expect((await errorOf(client().getPayment({ paymentId: randomUUID() }, asService()))).code).to.equal(Code.NotFound);
    const userToken = (await h.t.tokens.issueUserToken(randomUUID())).token;
    const callsBefore = h.provider.counts().calls;
    const denied = await errorOf(
      client().authorizePayment({ idempotencyKey: randomUUID(), orderId: randomUUID(), amount: eur(1000n), paymentMethod: "pm_card_ok" }, h.t.as(userToken)),
    );
    expect(denied.code).to.equal(Code.PermissionDenied);
    expect(h.provider.counts().calls).to.equal(callsBefore);
  });
});
