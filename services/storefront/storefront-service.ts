// The StorefrontService handlers: each page asks its dependencies in
// parallel, each call under its own share of the page's budget.
import { Code } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { requireUser } from "@shop/platform";
import type { ClientFactory, Logger } from "@shop/platform";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { StorefrontService } from "../../gen/shop/storefront/v1/storefront_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { pickRecommendations, RECOMMENDATION_POOL } from "./recommendations.ts";
import { createSectionLoader, sectionDeadlineMs } from "./section.ts";

export interface StorefrontDeps {
  clients: ClientFactory;
  logger: Logger;
}

/** The contract's "at most 5" recent orders. */
const RECENT_ORDERS = 5;

export function createStorefrontService({ clients, logger }: StorefrontDeps): ServiceImpl<typeof StorefrontService> {
  const loadSection = createSectionLoader(logger);
  // Asked for at start, so a dependency topology.json does not allow fails
  // the start, not a page. Each client settles where its service is served
  // at its first call, once every module has started.
  const usersClient = clients.client(UserService);
  const ordersClient = clients.client(OrderService);
  const catalogClient = clients.client(CatalogService);
  const inventoryClient = clients.client(InventoryService);
  return {
    async getProfilePage() {
      const userId = requireUser();
      const timeoutMs = sectionDeadlineMs(StorefrontService.method.getProfilePage);
      const [user, orders, products] = await Promise.all([
        loadSection("users", () => usersClient.getProfile({}, { timeoutMs })),
        loadSection("orders", () => ordersClient.listOrders({ pageSize: RECENT_ORDERS }, { timeoutMs })),
        loadSection("catalog", () => catalogClient.listProducts({ pageSize: RECOMMENDATION_POOL }, { timeoutMs })),
      ]);
      return {
        page: {
          user: { user: user.value?.user, status: user.status },
          recentOrders: { orders: (orders.value?.orders ?? []).slice(0, RECENT_ORDERS), status: orders.status },
          recommendations: { products: pickRecommendations(products.value?.products ?? [], userId), status: products.status },
        },
      };
    },

    async getProductPage(req) {
      const timeoutMs = sectionDeadlineMs(StorefrontService.method.getProductPage);
      // Both calls start before either is awaited. An unknown SKU answers at
      // once; the stock call then ends on its own deadline, its outcome unused.
      const stockCall = loadSection("inventory", () => inventoryClient.getStock({ sku: req.sku }, { timeoutMs }));
      const product = await loadSection("catalog", () => catalogClient.getProduct({ sku: req.sku }, { timeoutMs }), {
        failPageOn: [Code.NotFound],
      });
      const stock = await stockCall;
      return {
        page: {
          product: { product: product.value?.product, status: product.status },
          stock: { available: stock.value?.stock?.available ?? 0, status: stock.status },
        },
      };
    },
  };
}
