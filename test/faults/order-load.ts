// Orders for a drill: a plan whose every outcome is known in advance, and a
// client that places it at bounded concurrency, retrying a failed CreateOrder
// with the same idempotency key (what a careful client does during an
// outage), so an order committed whose answer was lost is found, not doubled.
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { seedStock } from "../../services/inventory/seed.ts";
import type { Customer, DrillShop } from "./drill-shop.ts";

export type Outcome = "CONFIRMED" | "CANCELLED";

export interface PlannedOrder {
  readonly key: string;
  /** Index into the customers. */
  readonly customer: number;
  readonly sku: string;
  readonly quantity: number;
  readonly paymentMethod: string;
  readonly expected: Outcome;
}

/** Declined orders buy only this, so the stock they hold for a while never starves a confirmed order. */
const DECLINED_SKU = "paper-filters-100";
/** Sold out in the seed: an order for it is rejected without holding anything. */
const SOLD_OUT_SKU = "knock-box";
const SCARCE_SKU = "barista-apron";

/**
 * `count` orders of one unit each, spread over the customers: about a tenth
 * declined by the card (cancelled after holding stock), about a seventh for a
 * sold-out SKU (cancelled, nothing held), the rest confirmed, spread over the
 * remaining SKUs without ever asking for more than the seed holds.
 */
export function planOrders(count: number, customers: number): PlannedOrder[] {
  const run = randomBytes(4).toString("hex");
  const capacity = new Map(seedStock.filter((s) => ![DECLINED_SKU, SOLD_OUT_SKU, SCARCE_SKU].includes(s.sku)).map((s) => [s.sku, s.onHand]));
  const declinedStock = seedStock.find((s) => s.sku === DECLINED_SKU)!.onHand;
  const plan: PlannedOrder[] = [];
  let declined = 0;
  const skus = [...capacity.keys()];
  let next = 0;
  for (let i = 0; i < count; i++) {
    const base = { key: `${run}-${i}`, customer: i % customers, quantity: 1 };
    if (i % 10 === 3 && declined < declinedStock) {
      declined++;
      plan.push({ ...base, sku: DECLINED_SKU, paymentMethod: "pm_card_declined", expected: "CANCELLED" });
      continue;
    }
    let sku: string | undefined;
    for (let tries = 0; tries < skus.length && !sku; tries++) {
      const candidate = skus[next++ % skus.length];
      if (capacity.get(candidate)! > 0) sku = candidate;
    }
    if (i % 7 === 5 || !sku) {
      plan.push({ ...base, sku: SOLD_OUT_SKU, paymentMethod: "pm_card_ok", expected: "CANCELLED" });
      continue;
    }
    capacity.set(sku, capacity.get(sku)! - 1);
    plan.push({ ...base, sku, paymentMethod: "pm_card_ok", expected: "CONFIRMED" });
  }
  return plan;
}

/** What the client saw: the order id each key was answered with, and the failures it retried. */
export interface PlacedOrders {
  readonly orderIds: Map<string, string>;
  /** Failed CreateOrder calls, by code name. */
  readonly failures: Map<string, number>;
  /** Keys that needed more than one call. */
  readonly retriedKeys: number;
}

/** Codes a client may retry CreateOrder on, with the same key: the order may or may not exist. */
const RETRYABLE = new Set([Code.Unavailable, Code.Internal, Code.DeadlineExceeded, Code.Aborted, Code.Unknown, Code.ResourceExhausted]);

export interface PlaceOptions {
  /** Calls in flight at once. Default 16. */
  concurrency?: number;
  /** How long one key may keep being retried. Default 60 s. */
  retryForMs?: number;
  /** Called after each order is placed (for drills that act mid-way). */
  onPlaced?: (placedSoFar: number) => void;
}

export async function placeOrders(shop: () => DrillShop, customers: readonly Customer[], plan: readonly PlannedOrder[], options: PlaceOptions = {}): Promise<PlacedOrders> {
  const concurrency = options.concurrency ?? 16;
  const retryForMs = options.retryForMs ?? 60_000;
  const orderIds = new Map<string, string>();
  const failures = new Map<string, number>();
  let retriedKeys = 0;
  let nextIndex = 0;

  async function placeOne(o: PlannedOrder): Promise<void> {
    const giveUpAt = Date.now() + retryForMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const { order } = await shop().orders.createOrder(
          { idempotencyKey: o.key, items: [{ sku: o.sku, quantity: o.quantity }], paymentMethod: o.paymentMethod },
          { ...customers[o.customer].auth, timeoutMs: 5000 },
        );
        orderIds.set(o.key, order!.orderId);
        if (attempt > 1) retriedKeys++;
        return;
      } catch (err) {
        const cause = ConnectError.from(err);
        const crashed = await shop().exitReport(RETRYABLE.has(cause.code) ? 0 : 1000);
        if (crashed || !RETRYABLE.has(cause.code) || Date.now() > giveUpAt) {
          throw new Error(`CreateOrder ${o.key} failed for good after ${attempt} attempts: ${cause.message}${crashed ? `\n${crashed}` : ""}`);
        }
        failures.set(Code[cause.code], (failures.get(Code[cause.code]) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  async function worker(): Promise<void> {
    while (nextIndex < plan.length) {
      const o = plan[nextIndex++];
      await placeOne(o);
      options.onPlaced?.(orderIds.size);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, plan.length) }, worker));
  return { orderIds, failures, retriedKeys };
}
