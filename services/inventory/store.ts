// Reads of the stock and reservation tables, shared by the domain functions,
// the RPC handlers and the expiry sweep. Each takes the Queryable to read
// through, so a read inside a transaction sees that transaction's writes.
import type { Queryable } from "@shop/platform";

export type ReservationState = "HELD" | "COMMITTED" | "RELEASED" | "EXPIRED";

export interface StockItem {
  sku: string;
  quantity: number;
}

export interface StockRecord {
  sku: string;
  onHand: number;
  reserved: number;
}

export interface ReservationRecord {
  reservationId: string;
  orderId: string;
  status: ReservationState;
  /** Epoch milliseconds; meaningful only while HELD. */
  expiresAt: number;
  /** In SKU order. Empty only for a tombstone (released before it was ever made). */
  items: StockItem[];
}

interface StockRow {
  sku: string;
  on_hand: number | bigint;
  reserved: number | bigint;
}

interface ReservationRow {
  reservation_id: string;
  order_id: string;
  status: ReservationState;
  expires_at: number | bigint;
}

interface ItemRow {
  sku: string;
  quantity: number | bigint;
}

export async function findStock(q: Queryable, sku: string): Promise<StockRecord | undefined> {
  const row = await q.get<StockRow>("SELECT sku, on_hand, reserved FROM stock WHERE sku = ?", sku);
  return row && { sku: row.sku, onHand: Number(row.on_hand), reserved: Number(row.reserved) };
}

export async function findReservation(q: Queryable, reservationId: string): Promise<ReservationRecord | undefined> {
  const row = await q.get<ReservationRow>(
    "SELECT reservation_id, order_id, status, expires_at FROM reservations WHERE reservation_id = ?",
    reservationId,
  );
  if (!row) return undefined;
  const items = await q.all<ItemRow>("SELECT sku, quantity FROM reservation_items WHERE reservation_id = ? ORDER BY sku", reservationId);
  return {
    reservationId: row.reservation_id,
    orderId: row.order_id,
    status: row.status,
    expiresAt: Number(row.expires_at),
    items: items.map((i) => ({ sku: i.sku, quantity: Number(i.quantity) })),
  };
}

/** Ids of HELD reservations whose time ran out by `now`, oldest first. */
export async function findExpiredHolds(q: Queryable, now: number, limit: number): Promise<string[]> {
  const rows = await q.all<{ reservation_id: string }>(
    "SELECT reservation_id FROM reservations WHERE status = 'HELD' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
    now,
    limit,
  );
  return rows.map((r) => r.reservation_id);
}
