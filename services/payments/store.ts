// The payments service's tables:
// - payments: one per order (order_id is unique), its status and amounts.
// - pending_orders: what OrderCreated said (amount, currency, payment method),
//   kept until the stock is reserved; `cancelled` once OrderCancelled arrived.
//   A row with no amount is a tombstone: OrderCancelled came before
//   OrderCreated. `authorize_started_at` is set just before the provider is
//   asked, so a later attempt knows an authorization may exist to undo.
// - payment_idempotency_keys: the first answer of each RPC write, by key.
// Reads take an optional Queryable so they can run inside a transaction.
import type { Database, Queryable } from "@shop/platform";

export type PaymentStatusName = "AUTHORIZED" | "CAPTURED" | "VOIDED" | "REFUNDED" | "DECLINED" | "FAILED";

export interface PaymentRecord {
  paymentId: string;
  orderId: string;
  amountMinor: bigint;
  currency: string;
  paymentMethod: string;
  status: PaymentStatusName;
  declineReason: string;
  providerRef: string | null;
  refundedMinor: bigint;
  createdAt: string;
  updatedAt: string;
}

export interface PendingOrder {
  orderId: string;
  /** Unset while only OrderCancelled has arrived. */
  terms: { amountMinor: bigint; currency: string; paymentMethod: string } | undefined;
  cancelled: boolean;
  authorizeStarted: boolean;
}

export interface KeptAnswer {
  operation: string;
  fingerprint: string;
  paymentId: string;
  response: Uint8Array;
}

interface PaymentRow {
  payment_id: string;
  order_id: string;
  amount_minor: number | bigint;
  currency: string;
  payment_method: string;
  status: PaymentStatusName;
  decline_reason: string;
  provider_ref: string | null;
  refunded_minor: number | bigint;
  created_at: string;
  updated_at: string;
}

interface PendingOrderRow {
  order_id: string;
  amount_minor: number | bigint | null;
  currency: string | null;
  payment_method: string | null;
  cancelled: number | bigint;
  authorize_started_at: string | null;
}

const toPayment = (row: PaymentRow): PaymentRecord => ({
  paymentId: row.payment_id,
  orderId: row.order_id,
  amountMinor: BigInt(row.amount_minor),
  currency: row.currency,
  paymentMethod: row.payment_method,
  status: row.status,
  declineReason: row.decline_reason,
  providerRef: row.provider_ref,
  refundedMinor: BigInt(row.refunded_minor),
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toPendingOrder = (row: PendingOrderRow): PendingOrder => ({
  orderId: row.order_id,
  terms:
    row.amount_minor === null
      ? undefined
      : { amountMinor: BigInt(row.amount_minor), currency: row.currency ?? "", paymentMethod: row.payment_method ?? "" },
  cancelled: Number(row.cancelled) === 1,
  authorizeStarted: row.authorize_started_at !== null,
});

const now = () => new Date().toISOString();

export type PaymentStore = ReturnType<typeof createPaymentStore>;

export function createPaymentStore(db: Database) {
  return {
    async paymentById(paymentId: string, q: Queryable = db): Promise<PaymentRecord | undefined> {
      const row = await q.get<PaymentRow>("SELECT * FROM payments WHERE payment_id = ?", paymentId);
      return row && toPayment(row);
    },
    async paymentByOrder(orderId: string, q: Queryable = db): Promise<PaymentRecord | undefined> {
      const row = await q.get<PaymentRow>("SELECT * FROM payments WHERE order_id = ?", orderId);
      return row && toPayment(row);
    },
    /** Answers false when the order already has a payment. */
    async insertPayment(tx: Queryable, p: PaymentRecord): Promise<boolean> {
      const changed = await tx.run(
        "INSERT INTO payments (payment_id, order_id, amount_minor, currency, payment_method, status, decline_reason, provider_ref, refunded_minor, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
        p.paymentId,
        p.orderId,
        p.amountMinor,
        p.currency,
        p.paymentMethod,
        p.status,
        p.declineReason,
        p.providerRef,
        p.refundedMinor,
        p.createdAt,
        p.updatedAt,
      );
      return changed === 1;
    },
    /** Moves the payment to `to` only from `from`; answers whether it moved (false: someone else moved it first). */
    async transition(tx: Queryable, paymentId: string, from: PaymentStatusName, to: PaymentStatusName): Promise<boolean> {
      const changed = await tx.run("UPDATE payments SET status = ?, updated_at = ? WHERE payment_id = ? AND status = ?", to, now(), paymentId, from);
      return changed === 1;
    },
    /** Adds a refund unless it would exceed the captured amount; answers whether it was added. */
    async addRefund(tx: Queryable, paymentId: string, amountMinor: bigint): Promise<boolean> {
      const changed = await tx.run(
        "UPDATE payments SET status = 'REFUNDED', refunded_minor = refunded_minor + ?, updated_at = ? WHERE payment_id = ? AND status IN ('CAPTURED', 'REFUNDED') AND refunded_minor + ? <= amount_minor",
        amountMinor,
        now(),
        paymentId,
        amountMinor,
      );
      return changed === 1;
    },

    async pendingOrder(orderId: string, q: Queryable = db): Promise<PendingOrder | undefined> {
      const row = await q.get<PendingOrderRow>("SELECT * FROM pending_orders WHERE order_id = ?", orderId);
      return row && toPendingOrder(row);
    },
    /** Keeps the order's terms; the first OrderCreated wins, a tombstone left by OrderCancelled gets them too. */
    async rememberOrder(tx: Queryable, orderId: string, terms: { amountMinor: bigint; currency: string; paymentMethod: string }): Promise<void> {
      const at = now();
      await tx.run(
        "INSERT INTO pending_orders (order_id, amount_minor, currency, payment_method, cancelled, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (order_id) DO UPDATE SET amount_minor = excluded.amount_minor, currency = excluded.currency, payment_method = excluded.payment_method, updated_at = excluded.updated_at WHERE pending_orders.amount_minor IS NULL",
        orderId,
        terms.amountMinor,
        terms.currency,
        terms.paymentMethod,
        at,
        at,
      );
    },
    /**
     * Records that the provider is about to be asked. Answers false when the
     * order was cancelled before any authorization was started: then nothing
     * may be authorized. Answers true when it is not cancelled, or when an
     * earlier attempt already started one (which may need undoing).
     */
    async startAuthorizing(orderId: string): Promise<boolean> {
      const changed = await db.run(
        "UPDATE pending_orders SET authorize_started_at = COALESCE(authorize_started_at, ?) WHERE order_id = ? AND amount_minor IS NOT NULL AND (cancelled = 0 OR authorize_started_at IS NOT NULL)",
        now(),
        orderId,
      );
      return changed === 1;
    },
    /**
     * Touches the order's row first thing in a transaction. The write takes the
     * row's lock (PostgreSQL) so the StockReserved and OrderCancelled
     * transactions for one order run one after the other and each sees what
     * the other committed.
     */
    async lockOrder(tx: Queryable, orderId: string): Promise<PendingOrder | undefined> {
      await tx.run("UPDATE pending_orders SET updated_at = ? WHERE order_id = ?", now(), orderId);
      return this.pendingOrder(orderId, tx);
    },
    /** Marks the order cancelled, leaving a tombstone when OrderCreated has not arrived yet; also takes the row's lock. */
    async markCancelled(tx: Queryable, orderId: string): Promise<void> {
      const at = now();
      await tx.run(
        "INSERT INTO pending_orders (order_id, cancelled, created_at, updated_at) VALUES (?, 1, ?, ?) ON CONFLICT (order_id) DO UPDATE SET cancelled = 1, updated_at = excluded.updated_at",
        orderId,
        at,
        at,
      );
    },

    async keptAnswer(key: string, q: Queryable = db): Promise<KeptAnswer | undefined> {
      const row = await q.get<{ operation: string; fingerprint: string; payment_id: string; response: Uint8Array }>(
        "SELECT operation, fingerprint, payment_id, response FROM payment_idempotency_keys WHERE idempotency_key = ?",
        key,
      );
      return row && { operation: row.operation, fingerprint: row.fingerprint, paymentId: row.payment_id, response: row.response };
    },
    /**
     * Claims the key first thing in a write's transaction; answers false when
     * it already has an answer. A concurrent transaction claiming the same key
     * waits here (PostgreSQL) until the first commits, then gets false.
     */
    async claimKey(tx: Queryable, key: string, claim: Omit<KeptAnswer, "response">): Promise<boolean> {
      const changed = await tx.run(
        "INSERT INTO payment_idempotency_keys (idempotency_key, operation, fingerprint, payment_id, response, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        key,
        claim.operation,
        claim.fingerprint,
        claim.paymentId,
        new Uint8Array(0),
        now(),
      );
      return changed === 1;
    },
    /** Stores the answer for a key claimed in the same transaction. */
    async keepAnswer(tx: Queryable, key: string, response: Uint8Array): Promise<void> {
      await tx.run("UPDATE payment_idempotency_keys SET response = ? WHERE idempotency_key = ?", response, key);
    },
  };
}
