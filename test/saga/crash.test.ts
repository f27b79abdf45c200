// Crash safety of the embedded runner: the real `make run` process, killed
// with SIGKILL between a commit and its delivery, and while orders flow.
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";

const env = (dataDir: string, extra: Record<string, string> = {}) => ({
  DATA_DIR: dataDir,
  PAYMENT_PROVIDER_LATENCY_MS: "1",
  LOG_LEVEL: "info",
  ...extra,
});

function clients(p: ServerProcess) {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    users: createClient(UserService, transport),
    orders: createClient(OrderService, transport),
    inventory: createClient(InventoryService, transport),
    notifications: createClient(NotificationService, transport),
  };
}

async function shopper(users: Client<typeof UserService>, email: string) {
  await users.signUp({ email, password: "crash-test-pw", displayName: "Crash" });
  const { token } = await users.login({ email, password: "crash-test-pw" });
  return { headers: { authorization: `Bearer ${token}` } };
}

async function finalStatus(orders: Client<typeof OrderService>, orderId: string, auth: { headers: Record<string, string> }) {
  let status = OrderStatus.PENDING;
  for await (const u of orders.watchOrder({ orderId }, { ...auth, timeoutMs: 15_000 })) status = u.order!.status;
  return status;
}

describe("crash safety of the embedded runner", function () {
  this.timeout(60_000);
  let dataDir: string;
  let running: ServerProcess | undefined;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "shop-crash-"));
  });
  afterEach(async () => {
    await running?.stop();
    running = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("completes the saga after a kill between the order's commit and its delivery", async () => {
    running = await startServerProcess("runner/embedded.ts", env(dataDir, { EVENT_RELAY_HOLD: "1" }));
    let c = clients(running);
    const auth = await shopper(c.users, "survivor@example.com");
    const { order } = await c.orders.createOrder({ idempotencyKey: "crash-1", items: [{ sku: "french-press-1l", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
    expect(order?.status).to.equal(OrderStatus.PENDING);
    const stockBefore = (await c.inventory.getStock({ sku: "french-press-1l" })).stock!;
    expect(stockBefore.reserved).to.equal(0);

    running.child.kill("SIGKILL");
    const exit = await running.exited;
    expect(exit.signal).to.equal("SIGKILL");

    running = await startServerProcess("runner/embedded.ts", env(dataDir));
    c = clients(running);
    expect(await finalStatus(c.orders, order!.orderId, auth)).to.equal(OrderStatus.CONFIRMED);
    const list = await c.notifications.listNotifications({}, auth);
    expect(list.notifications.map((n) => n.subject).join("\n")).to.contain("Welcome");
  });

  it("loses no committed order and repeats no effect when killed while orders flow", async () => {
    running = await startServerProcess("runner/embedded.ts", env(dataDir));
    let c = clients(running);
    const auth = await shopper(c.users, "busy@example.com");
    const before = (await c.inventory.getStock({ sku: "latte-mug" })).stock!;
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const { order } = await c.orders.createOrder({ idempotencyKey: `flow-${i}`, items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
      ids.push(order!.orderId);
    }
    running.child.kill("SIGKILL");
    await running.exited;

    running = await startServerProcess("runner/embedded.ts", env(dataDir));
    c = clients(running);
    const statuses = await Promise.all(ids.map((id) => finalStatus(c.orders, id, auth)));
    const confirmed = statuses.filter((s) => s === OrderStatus.CONFIRMED).length;
    expect(confirmed + statuses.filter((s) => s === OrderStatus.CANCELLED).length).to.equal(30);
    expect(confirmed).to.equal(30);
    // Retrying the same keys after the restart finds the same orders.
    const again = await c.orders.createOrder({ idempotencyKey: "flow-7", items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
    expect(again.order?.orderId).to.equal(ids[7]);
    const listed = await c.orders.listOrders({ pageSize: 100 }, auth);
    expect(listed.orders).to.have.length(30);

    // Stock moved once per order, whatever was redelivered after the kill.
    let after = (await c.inventory.getStock({ sku: "latte-mug" })).stock!;
    for (let i = 0; i < 100 && after.onHand !== before.onHand - 30; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = (await c.inventory.getStock({ sku: "latte-mug" })).stock!;
    }
    expect(after.onHand).to.equal(before.onHand - 30);
    expect(after.reserved).to.equal(before.reserved);
    // One confirmation notification per order.
    let confirmations = 0;
    for (let i = 0; i < 100; i++) {
      const { notifications } = await c.notifications.listNotifications({ pageSize: 100 }, auth);
      confirmations = notifications.filter((n) => n.subject.includes("confirmed")).length;
      if (confirmations >= 30) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(confirmations).to.equal(30);
  });
});
