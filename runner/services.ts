// Every service of the shop, in the order they start.
import type { ServiceModule } from "@shop/platform";
import { catalog } from "@shop/catalog";
import { inventory } from "@shop/inventory";
import { notifications } from "@shop/notifications";
import { orders } from "@shop/orders";
import { payments } from "@shop/payments";
import { storefront } from "@shop/storefront";
import { users } from "@shop/users";

export const allServices: readonly ServiceModule[] = [users, catalog, inventory, orders, payments, notifications, storefront];
