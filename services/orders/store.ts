// The orders and order_items tables. Status changes are conditional updates
// ("… WHERE status = 'PENDING'"), so of two racing changes exactly one wins,
// on SQLite and on PostgreSQL alike.
import type { Database, Queryable } from "@shop/platform";

export type OrderStatusName = "PENDING" | "CONFIRMED" | "CANCELLED";

export interface OrderLine {
  sku: string;
  name: string;
  quantity: number;
  unitPriceMinor: bigint;
  lineTotalMinor: bigint;
}

export interface OrderRecord {
  orderId: string;
  userId: string;
  status: OrderStatusName;
  items: OrderLine[];
  totalMinor: bigint;
  currency: string;
  paymentMethod: string;
  paymentId: string;
  cancelReason: string;
  idempotencyKey: string;
  requestFingerprint: string;
  createdAt: string;
  updatedAt: string;
}

/** Where a page of a user's orders continues: after this order, going back in time. */
export type OrderPosition = {
  createdAt: string;
  orderId: string;
};

interface OrderRow {
  order_id: string;
  user_id: string;
  status: OrderStatusName;
  total_minor: number | bigint;
  currency: string;
  payment_method: string;
  payment_id: string;
  cancel_reason: string;
  idempotency_key: string;
  request_fingerprint: string;
  created_at: string;
  updated_at: string;
}

interface ItemRow {
  order_id: string;
  sku: string;
  name: string;
  quantity: number | bigint;
  unit_price_minor: number | bigint;
  line_total_minor: number | bigint;
}

const toLine = (row: ItemRow): OrderLine => ({
  sku: row.sku,
  name: row.name,
  quantity: Number(row.quantity),
  unitPriceMinor: BigInt(row.unit_price_minor),
  lineTotalMinor: BigInt(row.line_total_minor),
});

const toRecord = (row: OrderRow, items: OrderLine[]): OrderRecord => ({
  orderId: row.order_id,
  userId: row.user_id,
  status: row.status,
  items,
  totalMinor: BigInt(row.total_minor),
  currency: row.currency,
  paymentMethod: row.payment_method,
  paymentId: row.payment_id,
  cancelReason: row.cancel_reason,
  idempotencyKey: row.idempotency_key,
  requestFingerprint: row.request_fingerprint,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export type OrderStore = ReturnType<typeof createOrderStore>;

export function createOrderStore(db: Database) {
  async function withItems(q: Queryable, rows: OrderRow[]): Promise<OrderRecord[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.order_id);
    const items = await q.all<ItemRow>(
      `SELECT * FROM order_items WHERE order_id IN (${ids.map(() => "?").join(", ")}) ORDER BY order_id, line_no`,
      ...ids,
    );
    const byOrder = new Map<string, OrderLine[]>(ids.map((id) => [id, []]));
    for (const item of items) byOrder.get(item.order_id)!.push(toLine(item));
    return rows.map((r) => toRecord(r, byOrder.get(r.order_id)!));
  }

  async function one(q: Queryable, row: OrderRow | undefined): Promise<OrderRecord | undefined> {
    return row && (await withItems(q, [row]))[0];
  }

  return {
    /**
     * Inserts a new order with its lines in the given transaction; answers
     * false, writing nothing, when the user already has an order with that
     * idempotency key.
     */
    async insert(tx: Queryable, order: OrderRecord): Promise<boolean> {
      const inserted = await tx.run(
        `INSERT INTO orders (order_id, user_id, status, total_minor, currency, payment_method, payment_id, cancel_reason,
                             idempotency_key, request_fingerprint, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, idempotency_key) DO NOTHING`,
        order.orderId,
        order.userId,
        order.status,
        order.totalMinor,
        order.currency,
        order.paymentMethod,
        order.paymentId,
        order.cancelReason,
        order.idempotencyKey,
        order.requestFingerprint,
        order.createdAt,
        order.updatedAt,
      );
      if (inserted !== 1) return false;
      for (const [lineNo, line] of order.items.entries()) {
        await tx.run(
          "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_minor, line_total_minor) VALUES (?, ?, ?, ?, ?, ?, ?)",
          order.orderId,
          lineNo,
          line.sku,
          line.name,
          line.quantity,
          line.unitPriceMinor,
          line.lineTotalMinor,
        );
      }
      return true;
    },

    async byId(orderId: string, q: Queryable = db): Promise<OrderRecord | undefined> {
      return one(q, await q.get<OrderRow>("SELECT * FROM orders WHERE order_id = ?", orderId));
    },

    async byIdempotencyKey(userId: string, key: string, q: Queryable = db): Promise<OrderRecord | undefined> {
      return one(q, await q.get<OrderRow>("SELECT * FROM orders WHERE user_id = ? AND idempotency_key = ?", userId, key));
    },

    /** Newest first; one row more than asked, to tell whether another page follows. */
    async listForUser(userId: string, after: OrderPosition | undefined, limit: number): Promise<OrderRecord[]> {
      const rows = after
        ? await db.all<OrderRow>(
            `SELECT * FROM orders WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND order_id < ?))
             ORDER BY created_at DESC, order_id DESC LIMIT ?`,
            userId,
            after.createdAt,
            after.createdAt,
            after.orderId,
            limit + 1,
          )
        : await db.all<OrderRow>("SELECT * FROM orders WHERE user_id = ? ORDER BY created_at DESC, order_id DESC LIMIT ?", userId, limit + 1);
      return withItems(db, rows);
    },

    /** Moves a PENDING order to CANCELLED; answers false when it was not PENDING. */
    async cancelPending(tx: Queryable, orderId: string, reason: string, at: string): Promise<boolean> {
      const changed = await tx.run(
        "UPDATE orders SET status = 'CANCELLED', cancel_reason = ?, updated_at = ? WHERE order_id = ? AND status = 'PENDING'",
        reason,
        at,
        orderId,
      );
      return changed === 1;
    },

    /** Moves a PENDING order to CONFIRMED with its payment; answers false when it was not PENDING. */
    async confirmPending(tx: Queryable, orderId: string, paymentId: string, at: string): Promise<boolean> {
      const changed = await tx.run(
        "UPDATE orders SET status = 'CONFIRMED', payment_id = ?, updated_at = ? WHERE order_id = ? AND status = 'PENDING'",
        paymentId,
        at,
        orderId,
      );
      return changed === 1;
    },

    /** Ids of orders still PENDING that were created before the cutoff, oldest first. */
    async pendingSince(cutoff: string, limit: number): Promise<string[]> {
      const rows = await db.all<{ order_id: string }>(
        "SELECT order_id FROM orders WHERE status = 'PENDING' AND created_at < ? ORDER BY created_at LIMIT ?",
        cutoff,
        limit,
      );
      return rows.map((r) => r.order_id);
    },
  };
}
