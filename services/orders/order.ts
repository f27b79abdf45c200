// What an order is, independent of storage and transport: its final states,
// what makes two CreateOrder requests "the same", and its contract shape.
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import type { OrderItemSchema, OrderSchema } from "../../gen/shop/orders/v1/orders_pb.js";
import type { OrderLine, OrderRecord, OrderStatusName } from "./store.ts";

/** CONFIRMED and CANCELLED never change again. */
export const isFinal = (status: OrderStatusName): boolean => status !== "PENDING";

const statusOf: Record<OrderStatusName, OrderStatus> = {
  PENDING: OrderStatus.PENDING,
  CONFIRMED: OrderStatus.CONFIRMED,
  CANCELLED: OrderStatus.CANCELLED,
};

/**
 * Identifies what a CreateOrder request asks for: the items (order-free, each
 * SKU appears once) and the payment method. A retry with the same idempotency
 * key must carry the same fingerprint.
 */
export function requestFingerprint(items: ReadonlyArray<{ sku: string; quantity: number }>, paymentMethod: string): string {
  const canonical = JSON.stringify({
    items: items.map((i) => [i.sku, i.quantity]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    paymentMethod,
  });
  return createHash("sha256").update(canonical).digest("base64url");
}

/** The first SKU that appears more than once, with the index of its repeat. */
export function repeatedSku(items: ReadonlyArray<{ sku: string }>): { sku: string; index: number } | undefined {
  const seen = new Set<string>();
  for (const [index, { sku }] of items.entries()) {
    if (seen.has(sku)) return { sku, index };
    seen.add(sku);
  }
  return undefined;
}

export const money = (currencyCode: string, unitsMinor: bigint) => ({ currencyCode, unitsMinor });

export const toOrderItem = (line: OrderLine, currency: string): MessageInitShape<typeof OrderItemSchema> => ({
  sku: line.sku,
  name: line.name,
  quantity: line.quantity,
  unitPrice: money(currency, line.unitPriceMinor),
  lineTotal: money(currency, line.lineTotalMinor),
});

export const toOrder = (order: OrderRecord): MessageInitShape<typeof OrderSchema> => ({
  orderId: order.orderId,
  userId: order.userId,
  status: statusOf[order.status],
  items: order.items.map((line) => toOrderItem(line, order.currency)),
  total: money(order.currency, order.totalMinor),
  cancelReason: order.cancelReason,
  paymentId: order.paymentId,
  createdAt: timestampFromDate(new Date(order.createdAt)),
  updatedAt: timestampFromDate(new Date(order.updatedAt)),
});
