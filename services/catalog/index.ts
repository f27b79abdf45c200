// catalog: products, prices in integer minor units, search, price quotes.
// Every method is a pure read; the catalog is seeded on first start.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { createCatalogService } from "./catalog-service.ts";
import { migrations } from "./migrations.ts";
import { createProductStore } from "./store.ts";

export const catalog: ServiceModule = {
  name: "catalog",
  migrations,
  async start(ctx) {
    return { services: [serve(CatalogService, createCatalogService(createProductStore(ctx.db)))] };
  },
};
