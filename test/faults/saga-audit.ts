// Counts the saga's effects straight from each service's database, against
// the orders: what a drill asserts once the shop has settled. An effect done
// twice (a second capture, a second stock movement, a second email) or not
// at all shows up here whatever the RPCs say, and so does an event emitted
// twice, because every event a service emits is a row of its outbox.
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { Client } from "pg";
import { StockCommittedSchema, StockRejectedSchema, StockReleasedSchema, StockReservedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { PaymentAuthorizedSchema, PaymentCapturedSchema, PaymentDeclinedSchema, PaymentRefundedSchema, PaymentVoidedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import { seedStock } from "../../services/inventory/seed.ts";
import type { DrillShop } from "./drill-shop.ts";
import type { Outcome } from "./order-load.ts";

/** The saga's events, each carrying the order it is about. */
const ORDER_EVENTS: readonly DescMessage[] = [
  OrderCreatedSchema,
  OrderConfirmedSchema,
  OrderCancelledSchema,
  StockReservedSchema,
  StockRejectedSchema,
  StockCommittedSchema,
  StockReleasedSchema,
  PaymentAuthorizedSchema,
  PaymentDeclinedSchema,
  PaymentCapturedSchema,
  PaymentVoidedSchema,
  PaymentRefundedSchema,
];
const schemaByType = new Map(ORDER_EVENTS.map((s) => [s.typeName, s]));
const short = (schema: DescMessage) => schema.name;

export interface DeadLetterRow {
  consumer: string;
  event_id: string;
  type: string;
  error: string;
  attempts: number;
}

export interface SagaAudit {
  readonly orders: number;
  readonly confirmed: number;
  readonly cancelled: number;
  readonly pending: number;
  /** Every broken rule, one line each ("order …: 2 PaymentCaptured, want 1"). */
  readonly problems: string[];
  /** Notifications about an order addressed to someone other than its customer (only a forged event makes one). */
  readonly strayNotifications: number;
  readonly deadLetters: DeadLetterRow[];
  /** Rows in every outbox: each event every service emitted, once. */
  readonly emitted: number;
  readonly unpublished: number;
}

async function withDatabase<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function rows<T>(url: string, sql: string): Promise<T[]> {
  return withDatabase(url, async (c) => (await c.query(sql)).rows as T[]);
}

/** How many events of each type each order has in one service's outbox; answers the outbox's size and what is still unpublished. */
async function outboxCounts(url: string, counts: Map<string, Map<string, number>>): Promise<{ emitted: number; unpublished: number }> {
  const outbox = await rows<{ type: string; payload: Buffer; published_at: string | null }>(url, "SELECT type, payload, published_at FROM event_outbox");
  for (const row of outbox) {
    const schema = schemaByType.get(row.type);
    if (!schema) continue;
    const { orderId } = fromBinary(schema, row.payload) as unknown as { orderId: string };
    const byOrder = counts.get(schema.name) ?? new Map<string, number>();
    byOrder.set(orderId, (byOrder.get(orderId) ?? 0) + 1);
    counts.set(schema.name, byOrder);
  }
  return { emitted: outbox.length, unpublished: outbox.filter((r) => r.published_at === null).length };
}

export interface AuditOptions {
  /** The outcome each order must have reached, by order id. */
  expected?: ReadonlyMap<string, Outcome>;
}

/** Reads every service's database (urls by service name) and checks each order's effects. */
export async function auditSaga(urls: Readonly<Record<string, string>>, options: AuditOptions = {}): Promise<SagaAudit> {
  const problems: string[] = [];
  const orders = await rows<{ order_id: string; user_id: string; status: string; cancel_reason: string }>(urls.orders, "SELECT order_id, user_id, status, cancel_reason FROM orders");
  const orderItems = await rows<{ order_id: string; sku: string; quantity: number }>(urls.orders, "SELECT order_id, sku, quantity FROM order_items");
  const reservations = await rows<{ reservation_id: string; status: string }>(urls.inventory, "SELECT reservation_id, status FROM reservations");
  const reservationItems = await rows<{ reservation_id: string; sku: string; quantity: number }>(urls.inventory, "SELECT reservation_id, sku, quantity FROM reservation_items");
  const stock = await rows<{ sku: string; on_hand: number; reserved: number }>(urls.inventory, "SELECT sku, on_hand, reserved FROM stock");
  const payments = await rows<{ order_id: string; status: string }>(urls.payments, "SELECT order_id, status FROM payments");
  const notifications = await rows<{ user_id: string; subject: string; body: string }>(urls.notifications, "SELECT user_id, subject, body FROM notifications");

  const events = new Map<string, Map<string, number>>();
  let unpublished = 0;
  let emitted = 0;
  const deadLetters: DeadLetterRow[] = [];
  for (const url of Object.values(urls)) {
    const outbox = await outboxCounts(url, events);
    unpublished += outbox.unpublished;
    emitted += outbox.emitted;
    deadLetters.push(...(await rows<DeadLetterRow>(url, "SELECT consumer, event_id, type, error, attempts FROM event_dead_letters")));
  }
  const count = (schema: DescMessage, orderId: string) => events.get(short(schema))?.get(orderId) ?? 0;

  const orderById = new Map(orders.map((o) => [o.order_id, o]));
  const itemsOf = (list: Array<{ sku: string; quantity: number }>) =>
    list
      .map((i) => `${i.sku}×${Number(i.quantity)}`)
      .sort()
      .join(",");
  const orderItemsBy = Map.groupBy(orderItems, (i) => i.order_id);
  const reservationBy = new Map(reservations.map((r) => [r.reservation_id, r]));
  const reservationItemsBy = Map.groupBy(reservationItems, (i) => i.reservation_id);
  const paymentBy = Map.groupBy(payments, (p) => p.order_id);
  const mail = new Map<string, { confirmed: number; cancelled: number }>();
  let strayNotifications = 0;
  for (const n of notifications) {
    const orderId = /Order reference: (\S+)/.exec(n.body)?.[1];
    if (!orderId) continue; // a welcome email
    const order = orderById.get(orderId);
    if (!order) problems.push(`notification about unknown order ${orderId}`);
    else if (order.user_id !== n.user_id) strayNotifications++;
    else {
      const m = mail.get(orderId) ?? { confirmed: 0, cancelled: 0 };
      if (/confirmed/.test(n.subject)) m.confirmed++;
      else if (/cancelled/.test(n.subject)) m.cancelled++;
      mail.set(orderId, m);
    }
  }

  const want = (orderId: string, what: string, got: number, wanted: number | [number, number]) => {
    const [lo, hi] = Array.isArray(wanted) ? wanted : [wanted, wanted];
    if (got < lo || got > hi) problems.push(`order ${orderId}: ${got} ${what}, want ${lo === hi ? lo : `${lo}..${hi}`}`);
  };
  const soldBySku = new Map<string, number>();
  let confirmed = 0;
  let cancelled = 0;
  let pending = 0;
  for (const o of orders) {
    const id = o.order_id;
    const expected = options.expected?.get(id);
    if (options.expected && !expected) problems.push(`order ${id} was never answered to the client`);
    if (expected && o.status !== expected) problems.push(`order ${id} is ${o.status} (${o.cancel_reason}), want ${expected}`);
    const reservation = reservationBy.get(id);
    const held = reservationItemsBy.get(id) ?? [];
    const pays = paymentBy.get(id) ?? [];
    const m = mail.get(id) ?? { confirmed: 0, cancelled: 0 };
    want(id, "OrderCreated", count(OrderCreatedSchema, id), 1);
    if (o.status === "CONFIRMED") {
      confirmed++;
      for (const i of orderItemsBy.get(id) ?? []) soldBySku.set(i.sku, (soldBySku.get(i.sku) ?? 0) + Number(i.quantity));
      if (reservation?.status !== "COMMITTED") problems.push(`confirmed order ${id}: reservation ${reservation?.status ?? "missing"}, want COMMITTED`);
      if (itemsOf(held) !== itemsOf(orderItemsBy.get(id) ?? [])) problems.push(`confirmed order ${id}: reserved ${itemsOf(held)}, ordered ${itemsOf(orderItemsBy.get(id) ?? [])}`);
      if (pays.length !== 1 || pays[0].status !== "CAPTURED") problems.push(`confirmed order ${id}: payments ${pays.map((p) => p.status).join(",") || "none"}, want one CAPTURED`);
      want(id, "OrderConfirmed", count(OrderConfirmedSchema, id), 1);
      want(id, "OrderCancelled", count(OrderCancelledSchema, id), 0);
      want(id, "StockReserved", count(StockReservedSchema, id), 1);
      want(id, "StockCommitted", count(StockCommittedSchema, id), 1);
      want(id, "StockReleased", count(StockReleasedSchema, id), 0);
      want(id, "PaymentAuthorized", count(PaymentAuthorizedSchema, id), 1);
      want(id, "PaymentCaptured", count(PaymentCapturedSchema, id), 1);
      want(id, "PaymentVoided", count(PaymentVoidedSchema, id), 0);
      want(id, "confirmation emails", m.confirmed, 1);
      want(id, "cancellation emails", m.cancelled, 0);
    } else if (o.status === "CANCELLED") {
      cancelled++;
      if (reservation && !["RELEASED", "EXPIRED"].includes(reservation.status)) problems.push(`cancelled order ${id}: reservation ${reservation.status}, want none, RELEASED or EXPIRED`);
      const captured = pays.filter((p) => ["CAPTURED", "AUTHORIZED", "REFUNDED"].includes(p.status));
      if (captured.length > 0 || pays.length > 1) problems.push(`cancelled order ${id}: payments ${pays.map((p) => p.status).join(",")}, want at most one, never captured or left authorized`);
      want(id, "OrderCancelled", count(OrderCancelledSchema, id), 1);
      want(id, "OrderConfirmed", count(OrderConfirmedSchema, id), 0);
      want(id, "StockReserved or StockRejected", count(StockReservedSchema, id) + count(StockRejectedSchema, id), [0, 1]);
      want(id, "StockCommitted", count(StockCommittedSchema, id), 0);
      want(id, "StockReleased", count(StockReleasedSchema, id), reservation?.status === "RELEASED" && held.length > 0 ? 1 : 0);
      want(id, "PaymentCaptured", count(PaymentCapturedSchema, id), 0);
      want(id, "PaymentVoided", count(PaymentVoidedSchema, id), count(PaymentAuthorizedSchema, id));
      want(id, "PaymentAuthorized", count(PaymentAuthorizedSchema, id), [0, 1]);
      want(id, "cancellation emails", m.cancelled, 1);
      want(id, "confirmation emails", m.confirmed, 0);
    } else {
      pending++;
      problems.push(`order ${id} is still ${o.status}`);
    }
  }
  for (const [key, byOrder] of events) for (const id of byOrder.keys()) if (!orderById.has(id)) problems.push(`${key} for unknown order ${id}`);
  for (const p of payments) if (!orderById.has(p.order_id)) problems.push(`payment for unknown order ${p.order_id}`);
  for (const r of reservations) if (!orderById.has(r.reservation_id)) problems.push(`reservation for unknown order ${r.reservation_id}`);
  if (options.expected) for (const id of options.expected.keys()) if (!orderById.has(id)) problems.push(`order ${id} the client was answered with is missing`);

  // Stock moved by exactly the confirmed quantities, and nothing is still held.
  for (const s of stock) {
    const seeded = seedStock.find((x) => x.sku === s.sku)?.onHand ?? 0;
    const sold = soldBySku.get(s.sku) ?? 0;
    if (Number(s.on_hand) !== seeded - sold) problems.push(`stock ${s.sku}: on_hand ${s.on_hand}, want ${seeded} − ${sold} confirmed = ${seeded - sold}`);
    if (Number(s.reserved) !== 0) problems.push(`stock ${s.sku}: ${s.reserved} still reserved`);
  }
  return { orders: orders.length, confirmed, cancelled, pending, problems, strayNotifications, deadLetters, emitted, unpublished };
}

/**
 * Waits until the shop has nothing left to do: no order PENDING, every
 * outbox published and every consumer's backlog (JetStream's unacknowledged
 * events included) empty, twice in a row.
 */
export async function waitUntilSettled(shop: DrillShop, ordersUrl: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  const operator = await shop.operator();
  let quietPolls = 0;
  let last = "";
  while (Date.now() - started < timeoutMs) {
    const [{ n }] = await rows<{ n: string }>(ordersUrl, "SELECT COUNT(*) AS n FROM orders WHERE status = 'PENDING'");
    let backlog = "unknown";
    try {
      const b = await shop.events.getEventBacklog({}, operator);
      const busy = [...b.sources.filter((s) => s.unpublished > 0).map((s) => `${s.source} unpublished ${s.unpublished}`), ...b.consumers.filter((c) => c.pending > 0).map((c) => `${c.consumer} pending ${c.pending}`)];
      backlog = busy.join(", ");
    } catch (err) {
      backlog = `GetEventBacklog failed: ${(err as Error).message}`;
    }
    last = `${n} orders PENDING; backlog: ${backlog || "empty"}`;
    quietPolls = Number(n) === 0 && backlog === "" ? quietPolls + 1 : 0;
    if (quietPolls >= 2) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the shop did not settle within ${timeoutMs} ms: ${last}`);
}
