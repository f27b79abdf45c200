// notifications: turns other services' events (a new account, a confirmed or
// cancelled order) into the emails a user would receive, records them instead
// of sending them, and lets the user list their own.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { handleNotificationEvents } from "./event-handlers.ts";
import { migrations } from "./migrations.ts";
import { createNotificationService } from "./notification-service.ts";
import { createNotificationStore } from "./store.ts";

export const notifications: ServiceModule = {
  name: "notifications",
  migrations,
  async start(ctx) {
    const store = createNotificationStore(ctx.db);
    handleNotificationEvents(ctx.events, store);
    return { services: [serve(NotificationService, createNotificationService(store))] };
  },
};
