// inventory: stock per SKU and reservations against it (reserve, commit,
// release, expire), idempotent by reservation id; inventory's part of the
// order saga; a sweep that expires forgotten holds.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { inventoryConfig } from "./config.ts";
import type { InventoryOptions } from "./config.ts";
import { createExpirySweep } from "./expiry-sweep.ts";
import { createInventoryService } from "./inventory-service.ts";
import { migrations } from "./migrations.ts";
import { handleOrderEvents } from "./order-events.ts";

export type { InventoryOptions } from "./config.ts";

/** The inventory module with its settings overridden, for example a short TTL in a test. */
export function createInventory(options: InventoryOptions = {}): ServiceModule {
  return {
    name: "inventory",
    migrations,
    async start(ctx) {
      const config = inventoryConfig(options, ctx.env);
      handleOrderEvents({ events: ctx.events, logger: ctx.logger, reservationTtlMs: config.reservationTtlMs });
      const sweep = createExpirySweep({ db: ctx.db, events: ctx.events, logger: ctx.logger, intervalMs: config.expirySweepMs });
      sweep.start();
      return {
        services: [serve(InventoryService, createInventoryService({ db: ctx.db, events: ctx.events }))],
        stop: () => sweep.stop(),
      };
    },
  };
}

/** Configured from the environment. */
export const inventory: ServiceModule = createInventory();
