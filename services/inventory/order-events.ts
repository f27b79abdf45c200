// Inventory's part of the order saga (services/SAGA.md): it reserves for
// OrderCreated, commits for OrderConfirmed and releases for OrderCancelled,
// always under reservation_id = order_id. Each handler changes the stock,
// emits its answer and marks the event handled in one transaction, and emits
// only when the reservation actually moved, so a repeated order event (a
// redelivery, or the same order announced twice) changes nothing and says
// nothing.
import { RetryLater } from "@shop/platform";
import type { Logger, ServiceEvents } from "@shop/platform";
import { StockCommittedSchema, StockRejectedSchema, StockReleasedSchema, StockReservedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { commit, release, reserve } from "./reservations.ts";
import type { StockItem } from "./store.ts";

export interface OrderEventOptions {
  events: ServiceEvents;
  logger: Logger;
  /** How long stock for a new order stays held before the sweep expires it. */
  reservationTtlMs: number;
}

/** An order may list a SKU on several lines; a reservation holds each SKU once. */
function mergeBySku(lines: ReadonlyArray<{ sku: string; quantity: number }>): StockItem[] {
  const merged = new Map<string, number>();
  for (const line of lines) merged.set(line.sku, (merged.get(line.sku) ?? 0) + line.quantity);
  return [...merged].map(([sku, quantity]) => ({ sku, quantity }));
}

export function handleOrderEvents({ events, logger, reservationTtlMs }: OrderEventOptions): void {
  events.on(OrderCreatedSchema, async (order, ctx) => {
    const items = mergeBySku(order.items);
    await ctx.commit(async (tx, emit) => {
      const invalid = items.find((i) => i.quantity < 1);
      if (items.length === 0 || invalid) {
        await emit(StockRejectedSchema, { orderId: order.orderId, reason: invalid ? `invalid quantity: ${invalid.sku}` : "no items to reserve", sku: invalid?.sku ?? "" });
        return;
      }
      const outcome = await reserve(tx, { reservationId: order.orderId, orderId: order.orderId, items, expiresAt: Date.now() + reservationTtlMs });
      switch (outcome.kind) {
        case "reserved":
          await emit(StockReservedSchema, { orderId: order.orderId, reservationId: order.orderId, items: outcome.reservation.items });
          return;
        case "short":
          await emit(StockRejectedSchema, { orderId: order.orderId, reason: `out of stock: ${outcome.sku}`, sku: outcome.sku });
          return;
        case "unknown-sku":
          await emit(StockRejectedSchema, { orderId: order.orderId, reason: `unknown sku: ${outcome.sku}`, sku: outcome.sku });
          return;
        case "conflict":
          logger.warn({ order_id: order.orderId, event_id: ctx.id }, "OrderCreated repeats an order with different items; the first reservation stands");
          return;
        case "existing":
        case "tombstone":
          // Reserved before, or cancelled before it got here: nothing to do.
          return;
      }
    });
  });

  events.on(OrderConfirmedSchema, async (order, ctx) => {
    const reservationId = order.reservationId || order.orderId;
    await ctx.commit(async (tx, emit) => {
      const outcome = await commit(tx, reservationId);
      switch (outcome.kind) {
        case "changed":
          await emit(StockCommittedSchema, { orderId: order.orderId, reservationId });
          return;
        case "unchanged":
          return;
        case "unknown":
          throw new RetryLater(`reservation ${reservationId} for confirmed order ${order.orderId} is not here yet`);
        default:
          // A confirmed order whose stock went back: only a person can settle
          // it, so the event fails until it lands in the dead letters.
          throw new Error(`order ${order.orderId} was confirmed but its reservation is ${outcome.reservation.status}; its stock is no longer held`);
      }
    });
  });

  events.on(OrderCancelledSchema, async (order, ctx) => {
    const reservationId = order.reservationId || order.orderId;
    await ctx.commit(async (tx, emit) => {
      // An unknown id becomes a RELEASED tombstone: the OrderCreated this
      // cancellation overtook will then hold nothing.
      const outcome = await release(tx, reservationId, { tombstoneForOrder: order.orderId });
      switch (outcome.kind) {
        case "changed":
          await emit(StockReleasedSchema, { orderId: order.orderId, reservationId, reason: order.reason || "order cancelled" });
          return;
        case "unchanged":
        case "tombstoned":
          return;
        case "refused":
          throw new Error(`order ${order.orderId} was cancelled but its reservation is already committed`);
        case "unknown":
          throw new Error(`reservation ${reservationId}: release answered unknown despite the tombstone`);
      }
    });
  });
}
