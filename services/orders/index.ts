// orders: CreateOrder with an idempotency key (PENDING), the order saga
// (StockRejected / PaymentDeclined / PaymentAuthorized and a timeout move it
// to CANCELLED or CONFIRMED), and a status stream.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { migrations } from "./migrations.ts";
import { createOrderService } from "./order-service.ts";
import { createOrderTransitions } from "./order-transitions.ts";
import { handleSagaEvents } from "./saga-events.ts";
import { createSagaTimeout } from "./saga-timeout.ts";
import { createOrderStatusChanges } from "./status-changes.ts";
import { createOrderStore } from "./store.ts";

export interface OrdersModuleOptions {
  /**
   * How long an order may stay PENDING before the saga timeout cancels it.
   * Default: ORDER_SAGA_TIMEOUT_MS from the service's environment, then 30000.
   */
  sagaTimeoutMs?: number;
  /**
   * Pause between two looks for timed-out orders; an order is cancelled at
   * most this long after its timeout. Default: ORDER_SAGA_SWEEP_MS, then 1000.
   */
  sagaSweepMs?: number;
  /**
   * How often WatchOrder re-reads the order when no change was announced in
   * this process (another replica may have made it). Default 1000.
   */
  watchPollMs?: number;
}

function positiveMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
  return value;
}

export function createOrdersModule(options: OrdersModuleOptions = {}): ServiceModule {
  return {
    name: "orders",
    migrations,
    async start(ctx) {
      const store = createOrderStore(ctx.db);
      const transitions = createOrderTransitions(store);
      const changes = createOrderStatusChanges();
      handleSagaEvents({ events: ctx.events, transitions, changes, logger: ctx.logger });
      const timeout = createSagaTimeout({
        store,
        events: ctx.events,
        transitions,
        changes,
        logger: ctx.logger,
        timeoutMs: options.sagaTimeoutMs ?? positiveMs(ctx.env, "ORDER_SAGA_TIMEOUT_MS", 30_000),
        sweepMs: options.sagaSweepMs ?? positiveMs(ctx.env, "ORDER_SAGA_SWEEP_MS", 1000),
      });
      const service = createOrderService({
        store,
        transitions,
        changes,
        events: ctx.events,
        catalog: ctx.clients.client(CatalogService),
        logger: ctx.logger,
        watchPollMs: options.watchPollMs ?? 1000,
      });
      timeout.start();
      return { services: [serve(OrderService, service)], stop: () => timeout.stop() };
    },
  };
}

export const orders: ServiceModule = createOrdersModule();
