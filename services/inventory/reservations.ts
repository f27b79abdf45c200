// The reservation rules, shared by the RPC handlers, the saga's event
// handlers and the expiry sweep. Each function runs inside the caller's
// transaction and is idempotent by reservation id. A reservation is HELD,
// then exactly one of COMMITTED, RELEASED or EXPIRED, never back; every move
// out of HELD is a conditional UPDATE on status, so two racing transitions
// cannot both adjust the stock.
import type { Queryable } from "@shop/platform";
import { findReservation, findStock } from "./store.ts";
import type { ReservationRecord, ReservationState, StockItem } from "./store.ts";

export interface ReserveRequest {
  reservationId: string;
  orderId: string;
  /** At least one, each SKU once, quantities above zero. */
  items: readonly StockItem[];
  /** Epoch milliseconds after which the hold may be expired. */
  expiresAt: number;
}

export type ReserveOutcome =
  | { kind: "reserved"; reservation: ReservationRecord }
  /** The same request was reserved before: nothing changed. */
  | { kind: "existing"; reservation: ReservationRecord }
  /** The id belongs to a different order or different items. */
  | { kind: "conflict"; reservation: ReservationRecord }
  /** The id was released before it was ever reserved; it can never hold stock. */
  | { kind: "tombstone"; reservation: ReservationRecord }
  /** Too little available of this SKU; nothing was held. */
  | { kind: "short"; sku: string; available: number }
  | { kind: "unknown-sku"; sku: string };

export type TransitionOutcome =
  | { kind: "changed"; reservation: ReservationRecord }
  /** Already in the state asked for: nothing changed. */
  | { kind: "unchanged"; reservation: ReservationRecord }
  /** In a state the transition cannot leave from. */
  | { kind: "refused"; reservation: ReservationRecord }
  /** An unknown id that release recorded as RELEASED, so a later reserve holds nothing. */
  | { kind: "tombstoned"; reservation: ReservationRecord }
  | { kind: "unknown" };

const bySku = (a: StockItem, b: StockItem) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0);

function sameRequest(existing: ReservationRecord, req: ReserveRequest): boolean {
  const wanted = [...req.items].sort(bySku);
  return (
    existing.orderId === req.orderId &&
    existing.items.length === wanted.length &&
    existing.items.every((item, i) => item.sku === wanted[i].sku && item.quantity === wanted[i].quantity)
  );
}

/**
 * Holds every item or none. The reservation row goes in first, so a second
 * reserve with the same id (even a concurrent one, on PostgreSQL) finds it.
 * Stock is taken in SKU order, so concurrent reservations lock rows in the
 * same order; a SKU that runs short gives back what was already taken.
 */
export async function reserve(tx: Queryable, req: ReserveRequest): Promise<ReserveOutcome> {
  if (req.items.length === 0) throw new Error(`reservation ${req.reservationId}: nothing to reserve`);
  const now = new Date().toISOString();
  const inserted = await tx.run(
    "INSERT INTO reservations (reservation_id, order_id, status, expires_at, created_at, updated_at) VALUES (?, ?, 'HELD', ?, ?, ?) ON CONFLICT (reservation_id) DO NOTHING",
    req.reservationId,
    req.orderId,
    req.expiresAt,
    now,
    now,
  );
  if (inserted === 0) {
    const existing = (await findReservation(tx, req.reservationId))!;
    if (existing.items.length === 0) return { kind: "tombstone", reservation: existing };
    return { kind: sameRequest(existing, req) ? "existing" : "conflict", reservation: existing };
  }

  const items = [...req.items].sort(bySku);
  const taken: StockItem[] = [];
  for (const item of items) {
    // Check and take in one statement: no read-then-write window in which a
    // concurrent reservation could take the same units.
    const changed = await tx.run(
      "UPDATE stock SET reserved = reserved + ? WHERE sku = ? AND on_hand - reserved >= ?",
      item.quantity,
      item.sku,
      item.quantity,
    );
    if (changed === 1) {
      taken.push(item);
      continue;
    }
    for (const t of taken) await tx.run("UPDATE stock SET reserved = reserved - ? WHERE sku = ?", t.quantity, t.sku);
    await tx.run("DELETE FROM reservations WHERE reservation_id = ?", req.reservationId);
    const stock = await findStock(tx, item.sku);
    return stock ? { kind: "short", sku: item.sku, available: stock.onHand - stock.reserved } : { kind: "unknown-sku", sku: item.sku };
  }
  for (const item of items) {
    await tx.run("INSERT INTO reservation_items (reservation_id, sku, quantity) VALUES (?, ?, ?)", req.reservationId, item.sku, item.quantity);
  }
  return { kind: "reserved", reservation: { reservationId: req.reservationId, orderId: req.orderId, status: "HELD", expiresAt: req.expiresAt, items } };
}

/** Sells held stock: on_hand and reserved both go down. */
export async function commit(tx: Queryable, reservationId: string): Promise<TransitionOutcome> {
  const moved = await leaveHeld(tx, reservationId, "COMMITTED");
  if (!moved) return settled(tx, reservationId, ["COMMITTED"]);
  for (const item of moved.items) {
    await tx.run("UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ? WHERE sku = ?", item.quantity, item.quantity, item.sku);
  }
  return { kind: "changed", reservation: moved };
}

export interface ReleaseOptions {
  /**
   * When the id is unknown, record it as RELEASED for this order instead of
   * answering "unknown": the saga's OrderCancelled may overtake its OrderCreated.
   */
  tombstoneForOrder?: string;
}

/** Gives held stock back. A released or expired reservation stays as it is. */
export async function release(tx: Queryable, reservationId: string, options: ReleaseOptions = {}): Promise<TransitionOutcome> {
  const moved = await leaveHeld(tx, reservationId, "RELEASED");
  if (moved) {
    await giveBack(tx, moved);
    return { kind: "changed", reservation: moved };
  }
  const outcome = await settled(tx, reservationId, ["RELEASED", "EXPIRED"]);
  if (outcome.kind !== "unknown" || options.tombstoneForOrder === undefined) return outcome;
  const now = new Date().toISOString();
  await tx.run(
    "INSERT INTO reservations (reservation_id, order_id, status, expires_at, created_at, updated_at) VALUES (?, ?, 'RELEASED', 0, ?, ?) ON CONFLICT (reservation_id) DO NOTHING",
    reservationId,
    options.tombstoneForOrder,
    now,
    now,
  );
  return { kind: "tombstoned", reservation: (await findReservation(tx, reservationId))! };
}

/** Gives back the stock of a HELD reservation whose time ran out by `now`; "refused" when it has not. */
export async function expire(tx: Queryable, reservationId: string, now: number): Promise<TransitionOutcome> {
  const changed = await tx.run(
    "UPDATE reservations SET status = 'EXPIRED', updated_at = ? WHERE reservation_id = ? AND status = 'HELD' AND expires_at <= ?",
    new Date(now).toISOString(),
    reservationId,
    now,
  );
  if (changed === 0) return settled(tx, reservationId, ["EXPIRED"]);
  const moved = (await findReservation(tx, reservationId))!;
  await giveBack(tx, moved);
  return { kind: "changed", reservation: moved };
}

async function leaveHeld(tx: Queryable, reservationId: string, to: ReservationState): Promise<ReservationRecord | undefined> {
  const changed = await tx.run(
    "UPDATE reservations SET status = ?, updated_at = ? WHERE reservation_id = ? AND status = 'HELD'",
    to,
    new Date().toISOString(),
    reservationId,
  );
  return changed === 1 ? findReservation(tx, reservationId) : undefined;
}

async function giveBack(tx: Queryable, reservation: ReservationRecord): Promise<void> {
  for (const item of reservation.items) {
    await tx.run("UPDATE stock SET reserved = reserved - ? WHERE sku = ?", item.quantity, item.sku);
  }
}

/** The outcome for a reservation that did not move: already there, elsewhere, or unknown. */
async function settled(tx: Queryable, reservationId: string, alreadyThere: readonly ReservationState[]): Promise<TransitionOutcome> {
  const reservation = await findReservation(tx, reservationId);
  if (!reservation) return { kind: "unknown" };
  return alreadyThere.includes(reservation.status) ? { kind: "unchanged", reservation } : { kind: "refused", reservation };
}
