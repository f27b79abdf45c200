// The NotificationService handlers: a user reads only their own notifications.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { pageToken, requireUser } from "@shop/platform";
import { Channel } from "../../gen/shop/notifications/v1/notifications_pb.js";
import type { NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import type { NotificationCursor, NotificationRecord, NotificationStore } from "./store.ts";

const toNotification = (n: NotificationRecord) => ({
  notificationId: n.notificationId,
  userId: n.userId,
  channel: Channel[n.channel],
  subject: n.subject,
  body: n.body,
  createdAt: timestampFromDate(new Date(n.createdAt)),
  sourceEventId: n.sourceEventId,
});

export function createNotificationService(store: NotificationStore): ServiceImpl<typeof NotificationService> {
  return {
    async listNotifications(req) {
      const userId = requireUser();
      const size = pageToken.size(req.pageSize);
      const after = pageToken.decode<NotificationCursor>(req.pageToken, ["at", "id"]);
      const rows = await store.listForUser(userId, after, size);
      const more = rows.length > size;
      const shown = more ? rows.slice(0, size) : rows;
      const last = shown[shown.length - 1];
      return {
        notifications: shown.map(toNotification),
        nextPageToken: more ? pageToken.encode({ at: last.createdAt, id: last.notificationId }) : "",
      };
    },
  };
}
