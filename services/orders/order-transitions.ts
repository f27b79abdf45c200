// The two ways out of PENDING, each with the event it causes, written in the
// caller's transaction (an RPC's events.transaction or an event's commit). An
// order already final is left as it is and nothing is emitted: that is what
// makes CancelOrder retries, redelivered saga events and a late
// PaymentAuthorized after a timeout harmless.
import type { Emit, Queryable } from "@shop/platform";
import { OrderCancelledSchema, OrderConfirmedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { money } from "./order.ts";
import type { OrderRecord, OrderStore } from "./store.ts";

export interface Transition {
  /** The order after the attempt; undefined when there is no such order. */
  readonly order: OrderRecord | undefined;
  /** True when this call moved it out of PENDING (and emitted the event). */
  readonly changed: boolean;
}

export interface CancelOptions {
  /**
   * Sent as OrderCancelled.reservation_id so inventory releases the stock.
   * Default: the order id (reservation id = order id); pass "" when stock
   * was never reserved.
   */
  reservationId?: string;
}

export type OrderTransitions = ReturnType<typeof createOrderTransitions>;

export function createOrderTransitions(store: OrderStore) {
  return {
    async cancel(tx: Queryable, emit: Emit, orderId: string, reason: string, options: CancelOptions = {}): Promise<Transition> {
      const before = await store.byId(orderId, tx);
      if (!before || before.status !== "PENDING") return { order: before, changed: false };
      if (!(await store.cancelPending(tx, orderId, reason, new Date().toISOString()))) {
        return { order: await store.byId(orderId, tx), changed: false };
      }
      const order = (await store.byId(orderId, tx))!;
      await emit(OrderCancelledSchema, {
        orderId,
        userId: order.userId,
        reason,
        paymentId: order.paymentId,
        reservationId: options.reservationId ?? orderId,
      });
      return { order, changed: true };
    },

    async confirm(tx: Queryable, emit: Emit, orderId: string, paymentId: string): Promise<Transition> {
      const before = await store.byId(orderId, tx);
      if (!before || before.status !== "PENDING") return { order: before, changed: false };
      if (!(await store.confirmPending(tx, orderId, paymentId, new Date().toISOString()))) {
        return { order: await store.byId(orderId, tx), changed: false };
      }
      const order = (await store.byId(orderId, tx))!;
      await emit(OrderConfirmedSchema, {
        orderId,
        userId: order.userId,
        total: money(order.currency, order.totalMinor),
        paymentId,
        reservationId: orderId,
      });
      return { order, changed: true };
    },
  };
}
