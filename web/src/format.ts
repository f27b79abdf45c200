// How values from the contracts read on a page.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Money } from "../../gen/shop/common/v1/money_pb.js";
import { OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";

/** Minor units to a localised amount: { EUR, 1999 } → "€19.99". */
export function money(m: Money | undefined): string {
  if (!m) return "";
  const code = m.currencyCode || "EUR";
  const digits = new Intl.NumberFormat("en", { style: "currency", currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
  return new Intl.NumberFormat("en", { style: "currency", currency: code }).format(Number(m.unitsMinor) / 10 ** digits);
}

export function dateTime(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" }) : "";
}

export function time(t: Timestamp | Date | undefined): string {
  if (!t) return "";
  return (t instanceof Date ? t : timestampDate(t)).toLocaleTimeString("en-GB", { hour12: false });
}

/** "PENDING", "CONFIRMED", "CANCELLED". */
export function statusName(s: OrderStatus): string {
  return OrderStatus[s] ?? "UNSPECIFIED";
}

export const isFinal = (s: OrderStatus) => s === OrderStatus.CONFIRMED || s === OrderStatus.CANCELLED;

/**
 * Order ids are UUIDv7: the first block is a timestamp, shared by orders
 * placed within a minute. It is what the notifications quote, so it stays;
 * the last characters (random) tell the orders apart.
 */
export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}
