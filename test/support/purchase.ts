// Shopper actions through the public RPCs, shared by the end-to-end tests.
import { randomUUID } from "node:crypto";
import type { Client } from "@connectrpc/connect";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import type { Order } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import type { TestShop } from "./shop.ts";

export interface Shopper {
  readonly userId: string;
  readonly token: string;
  readonly auth: { headers: { authorization: string } };
  readonly orders: Client<typeof OrderService>;
}

export async function signUpShopper(t: TestShop, name = "shopper"): Promise<Shopper> {
  const email = `${name}-${randomUUID().slice(0, 8)}@example.com`;
  const users = t.client(UserService);
  const { user } = await users.signUp({ email, password: "a-long-password", displayName: name });
  const { token } = await users.login({ email, password: "a-long-password" });
  return { userId: user!.id, token, auth: t.as(token), orders: t.client(OrderService) };
}

export const isFinal = (o: Order | undefined) => o?.status === OrderStatus.CONFIRMED || o?.status === OrderStatus.CANCELLED;

/** Follows WatchOrder to its end; answers every status seen, in order, and the final order. */
export async function watchToEnd(shopper: Shopper, orderId: string, timeoutMs = 10_000): Promise<{ statuses: OrderStatus[]; order: Order }> {
  const statuses: OrderStatus[] = [];
  let last: Order | undefined;
  for await (const update of shopper.orders.watchOrder({ orderId }, { ...shopper.auth, timeoutMs })) {
    last = update.order;
    if (last && statuses[statuses.length - 1] !== last.status) statuses.push(last.status);
  }
  if (!isFinal(last)) throw new Error(`WatchOrder ended before a final state: ${statuses.join(" → ")}`);
  return { statuses, order: last! };
}

export async function placeOrder(shopper: Shopper, items: Array<{ sku: string; quantity: number }>, paymentMethod = "pm_card_ok", idempotencyKey: string = randomUUID()) {
  const { order } = await shopper.orders.createOrder({ idempotencyKey, items, paymentMethod }, shopper.auth);
  return order!;
}

/** Polls check until it answers a value, bounded in time. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
