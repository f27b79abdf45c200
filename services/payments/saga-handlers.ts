// The payments steps of the order saga (services/SAGA.md). The provider is
// always called outside any transaction; each handler then records its
// effects and its events in one commit, together with the record that the
// event was handled.
//
// StockReserved and OrderCancelled for one order can run at the same time.
// Both transactions start by touching the order's pending row, so they
// serialize, and each re-checks what the other may have committed:
// - StockReserved commits first: OrderCancelled then finds the AUTHORIZED
//   payment, gives up its transaction (RetryLater) and voids it next attempt.
// - OrderCancelled commits first: StockReserved finds the order cancelled
//   with an authorization not yet voided, gives up its transaction, and next
//   attempt asks the provider again with the same key (same answer, no
//   second authorization) and voids it.
import { RetryLater } from "@shop/platform";
import type { Logger, ServiceEvents } from "@shop/platform";
import { StockReservedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { PaymentCapturedSchema, PaymentVoidedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import { announceAuthorization, authorizeRequest, paymentFromAuthorization } from "./authorization.ts";
import type { GuardedProvider } from "./provider-guard.ts";
import { providerKey } from "./provider-keys.ts";
import type { PaymentStore } from "./store.ts";

export interface SagaDeps {
  events: ServiceEvents;
  store: PaymentStore;
  provider: GuardedProvider;
  logger: Logger;
}

export function handleSagaEvents({ events, store, provider, logger }: SagaDeps): void {
  events.on(OrderCreatedSchema, async (event, ctx) => {
    await ctx.commit((tx) =>
      store.rememberOrder(tx, event.orderId, {
        amountMinor: event.total?.unitsMinor ?? 0n,
        currency: event.total?.currencyCode ?? "",
        paymentMethod: event.paymentMethod,
      }),
    );
  });

  events.on(StockReservedSchema, async (event, ctx) => {
    const { orderId } = event;
    const order = await store.pendingOrder(orderId);
    if (!order?.terms) {
      if (order?.cancelled) return;
      throw new RetryLater(`order ${orderId}: StockReserved arrived before OrderCreated`);
    }
    if (await store.paymentByOrder(orderId)) return;
    if (!(await store.startAuthorizing(orderId))) return; // cancelled before anything was authorized

    const terms = { orderId, ...order.terms };
    const outcome = await provider.authorize(authorizeRequest(terms));
    if (outcome.outcome === "rejected") throw new Error(`authorizing order ${orderId}: ${outcome.reason}`);

    let voided = false;
    if (outcome.outcome === "approved" && (await store.pendingOrder(orderId))?.cancelled) {
      // Cancelled while the provider was answering: record the authorization and undo it.
      const undone = await provider.void({ idempotencyKey: providerKey.void(orderId), providerRef: outcome.providerRef });
      if (undone.outcome !== "done") throw new Error(`voiding the authorization of cancelled order ${orderId}: ${undone.reason}`);
      voided = true;
    }

    const payment = paymentFromAuthorization(terms, outcome, { voided });
    const recorded = await ctx.commit(async (tx, emit) => {
      const current = await store.lockOrder(tx, orderId);
      if (await store.paymentByOrder(orderId, tx)) return false; // a twin event or an AuthorizePayment call recorded it first
      if (current?.cancelled && payment.status === "AUTHORIZED") {
        throw new RetryLater(`order ${orderId} was cancelled while its payment was authorized; voiding it next attempt`);
      }
      await store.insertPayment(tx, payment);
      await announceAuthorization(emit, payment);
      return true;
    });
    if (recorded) {
      logger.info({ order_id: orderId, payment_id: payment.paymentId, status: payment.status, reason: payment.declineReason || undefined }, "payment authorization recorded");
    }
  });

  events.on(OrderConfirmedSchema, async (event, ctx) => {
    const { orderId } = event;
    const payment = await store.paymentByOrder(orderId);
    if (!payment) throw new RetryLater(`order ${orderId} confirmed before its payment was recorded`);
    if (payment.status === "CAPTURED" || payment.status === "REFUNDED") return;
    if (payment.status !== "AUTHORIZED") throw new Error(`order ${orderId} was confirmed but its payment ${payment.paymentId} is ${payment.status}`);
    // A failure throws: the consumer retries with backoff and dead-letters
    // after its bounded attempts; a capture must eventually happen.
    const captured = await provider.capture({ idempotencyKey: providerKey.capture(orderId), providerRef: payment.providerRef!, amountMinor: payment.amountMinor });
    if (captured.outcome !== "done") throw new Error(`capturing payment ${payment.paymentId}: ${captured.reason}`);
    await ctx.commit(async (tx, emit) => {
      if (await store.transition(tx, payment.paymentId, "AUTHORIZED", "CAPTURED")) {
        await emit(PaymentCapturedSchema, { orderId, paymentId: payment.paymentId });
      }
    });
  });

  events.on(OrderCancelledSchema, async (event, ctx) => {
    const { orderId } = event;
    const payment = await store.paymentByOrder(orderId);
    if (payment?.status === "AUTHORIZED") {
      const voided = await provider.void({ idempotencyKey: providerKey.void(orderId), providerRef: payment.providerRef! });
      if (voided.outcome !== "done") throw new Error(`voiding payment ${payment.paymentId}: ${voided.reason}`);
    }
    await ctx.commit(async (tx, emit) => {
      await store.markCancelled(tx, orderId);
      if (!payment) {
        const recorded = await store.paymentByOrder(orderId, tx);
        if (recorded?.status === "AUTHORIZED") throw new RetryLater(`payment ${recorded.paymentId} was authorized while order ${orderId} was being cancelled; voiding it next attempt`);
        return;
      }
      if (payment.status === "AUTHORIZED" && (await store.transition(tx, payment.paymentId, "AUTHORIZED", "VOIDED"))) {
        await emit(PaymentVoidedSchema, { orderId, paymentId: payment.paymentId });
      }
    });
    if (payment?.status === "CAPTURED") {
      // Orders only cancels PENDING orders, and captures follow confirmation: this needs a person.
      logger.warn({ order_id: orderId, payment_id: payment.paymentId }, "order cancelled after its payment was captured; it needs a refund");
    }
  });
}
