// The messages the shop sent the shopper (recorded, not really sent). The
// saga writes them a moment after an order settles, so the list refreshes
// itself while it is open.
import type { Notification } from "../../../gen/shop/notifications/v1/notifications_pb.js";
import { Channel } from "../../../gen/shop/notifications/v1/notifications_pb.js";
import { notifications } from "../api.ts";
import { h, replace } from "../dom.ts";
import { errorBox } from "../errors.ts";
import { dateTime } from "../format.ts";
import { every } from "../page.ts";
import type { Page } from "../page.ts";

const REFRESH_MS = 3000;

function item(n: Notification): HTMLElement {
  return h(
    "li",
    { class: "note", "data-testid": "notification" },
    h("div", { class: "note-head" }, h("strong", null, n.subject || "Text message"), h("span", { class: "chip" }, Channel[n.channel]?.toLowerCase() ?? "message"), h("span", { class: "muted small" }, dateTime(n.createdAt))),
    h("p", null, n.body),
  );
}

export const notificationsPage: Page = async (main, { signal }) => {
  const list = h("ul", { class: "notes", "data-testid": "notifications" });
  const problems = h("div");
  replace(main, h("h1", null, "Notifications"), problems, list);
  async function load(): Promise<void> {
    try {
      const res = await notifications.listNotifications({ pageSize: 50 }, { signal });
      replace(problems);
      replace(list, res.notifications.length === 0 ? h("li", { class: "muted" }, "Nothing yet.") : res.notifications.map(item));
    } catch (err) {
      if (!signal.aborted) replace(problems, errorBox(err));
    }
  }
  await load();
  every(REFRESH_MS, signal, load);
};
