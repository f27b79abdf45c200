// The events notifications consumes. Each becomes one EMAIL notification,
// written in the same transaction that records the event as handled, and
// announced by NotificationRecorded from the same transaction.
import { randomUUID } from "node:crypto";
import type { EventContext, ServiceEvents } from "@shop/platform";
import { NotificationRecordedSchema } from "../../gen/shop/notifications/v1/events_pb.js";
import { Channel } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";
import { orderCancelledEmail, orderConfirmedEmail, welcomeEmail } from "./messages.ts";
import type { EmailMessage } from "./messages.ts";
import type { NotificationStore } from "./store.ts";

/** Records an email for the user; answers false, and emits nothing, when this event already has one. */
export function recordEmail(store: NotificationStore, eventCtx: EventContext, userId: string, message: EmailMessage): Promise<boolean> {
  return eventCtx.commit(async (tx, emit) => {
    const notificationId = randomUUID();
    const inserted = await store.insert(tx, {
      notificationId,
      userId,
      channel: "EMAIL",
      subject: message.subject,
      body: message.body,
      createdAt: new Date().toISOString(),
      sourceEventId: eventCtx.id,
    });
    if (inserted) await emit(NotificationRecordedSchema, { notificationId, userId, channel: Channel.EMAIL });
    return inserted;
  });
}

export function handleNotificationEvents(events: ServiceEvents, store: NotificationStore): void {
  events.on(UserRegisteredSchema, async (event, eventCtx) => {
    await recordEmail(store, eventCtx, event.userId, welcomeEmail(event));
  });
  events.on(OrderConfirmedSchema, async (event, eventCtx) => {
    await recordEmail(store, eventCtx, event.userId, orderConfirmedEmail(event));
  });
  events.on(OrderCancelledSchema, async (event, eventCtx) => {
    await recordEmail(store, eventCtx, event.userId, orderCancelledEmail(event));
  });
}
