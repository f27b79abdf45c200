// Every service of the shop, in the order they start.
import type { ServiceModule } from "@shop/platform";
import { catalog } from "@shop/catalog";
import { users } from "@shop/users";

export const allServices: readonly ServiceModule[] = [users, catalog];
