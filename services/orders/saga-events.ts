// What orders does with the other services' saga events (see ../SAGA.md).
// Each handler changes the order and emits its own event in the same
// transaction that records the event as handled; an event for an order that
// is already final changes nothing.
import type { Logger, ServiceEvents } from "@shop/platform";
import { StockRejectedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { PaymentAuthorizedSchema, PaymentDeclinedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import type { OrderTransitions, Transition } from "./order-transitions.ts";
import type { OrderStatusChanges } from "./status-changes.ts";

export interface SagaEventDeps {
  events: ServiceEvents;
  transitions: OrderTransitions;
  changes: OrderStatusChanges;
  logger: Logger;
}

export function handleSagaEvents({ events, transitions, changes, logger }: SagaEventDeps): void {
  const settled = (orderId: string, eventType: string, result: Transition) => {
    if (!result.order) logger.warn({ order_id: orderId, event: eventType }, "saga event for an unknown order; ignored");
    else if (result.changed) changes.changed(orderId);
  };

  events.on(StockRejectedSchema, async (event, eventCtx) => {
    const reason = `out of stock: ${event.sku || event.reason}`;
    // Nothing was reserved, so there is no reservation for inventory to release.
    const result = await eventCtx.commit((tx, emit) => transitions.cancel(tx, emit, event.orderId, reason, { reservationId: "" }));
    settled(event.orderId, eventCtx.type, result);
  });

  events.on(PaymentDeclinedSchema, async (event, eventCtx) => {
    // Payments writes the whole reason ("payment declined: card declined",
    // "payment provider unavailable: circuit open"); it is kept as written.
    const reason = event.reason || "payment declined";
    const result = await eventCtx.commit((tx, emit) => transitions.cancel(tx, emit, event.orderId, reason));
    settled(event.orderId, eventCtx.type, result);
  });

  events.on(PaymentAuthorizedSchema, async (event, eventCtx) => {
    const result = await eventCtx.commit((tx, emit) => transitions.confirm(tx, emit, event.orderId, event.paymentId));
    settled(event.orderId, eventCtx.type, result);
    const order = result.order;
    if (result.changed && order && event.amount && event.amount.unitsMinor !== order.totalMinor) {
      logger.warn(
        { order_id: order.orderId, authorized_minor: String(event.amount.unitsMinor), total_minor: String(order.totalMinor) },
        "authorized amount differs from the order total",
      );
    }
  });
}
