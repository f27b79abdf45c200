// storefront: the page aggregator. Each page is assembled from other
// services' answers, each fetched under its own deadline; a slow or failed
// dependency degrades its section, marked as such, never the page. It owns
// no data.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { StorefrontService } from "../../gen/shop/storefront/v1/storefront_pb.js";
import { sectionBudgetMs } from "./section.ts";
import { createStorefrontService } from "./storefront-service.ts";

export const storefront: ServiceModule = {
  name: "storefront",
  migrations: [],
  async start(ctx) {
    return { services: [serve(StorefrontService, createStorefrontService({ clients: ctx.clients, logger: ctx.logger }))] };
  },
  // Every call a page makes is one section's, under its share of the page's budget.
  callDeadlineMs: (caller, _callee, budgetMs) => (caller.parent === StorefrontService ? sectionBudgetMs(budgetMs) : undefined),
};
