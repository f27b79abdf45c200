// One order, its status followed live through WatchOrder (a server stream)
// while the saga runs; and the shopper's order history.
import type { Order } from "../../../gen/shop/orders/v1/orders_pb.js";
import { OrderStatus } from "../../../gen/shop/orders/v1/orders_pb.js";
import { isNavigationAbort, orders } from "../api.ts";
import { h, replace } from "../dom.ts";
import { errorBox } from "../errors.ts";
import { dateTime, isFinal, money, shortId, statusName, time } from "../format.ts";
import type { Page } from "../page.ts";

const TRACE_KEY = (orderId: string) => `shop.orderTrace.${orderId}`;

/** The trace CreateOrder ran in, so the page can point an operator at it. */
export function rememberOrderTrace(orderId: string, traceId: string): void {
  sessionStorage.setItem(TRACE_KEY(orderId), traceId);
}

export function statusBadge(order: Order): HTMLElement {
  const name = statusName(order.status);
  return h("span", { class: `status status-${name.toLowerCase()}`, "data-testid": "status", "data-status": name }, name);
}

function outcome(order: Order): HTMLElement | null {
  if (order.status === OrderStatus.CONFIRMED) {
    return h("div", { class: "ok", role: "status", "data-testid": "outcome" }, h("strong", null, "Your order is confirmed."), " Stock is reserved for you and the payment went through.");
  }
  if (order.status === OrderStatus.CANCELLED) {
    return h(
      "div",
      { class: "cancelled", role: "status", "data-testid": "outcome" },
      h("strong", null, "This order was cancelled."),
      " Reason: ",
      h("span", { "data-testid": "cancel-reason" }, order.cancelReason || "no reason given"),
      ". Nothing was charged.",
    );
  }
  return h("p", { class: "muted", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Reserving stock and authorising payment…");
}

export const orderPage: Page = async (main, { params, signal }) => {
  const orderId = params[0];
  const traceId = sessionStorage.getItem(TRACE_KEY(orderId));
  const summary = h("div");
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline" });
  const live = h("p", { class: "muted small", "data-testid": "live" });
  const problems = h("div");
  replace(
    main,
    h("p", null, h("a", { href: "#/orders" }, "← Your orders")),
    h("h1", null, "Order ", h("code", null, shortId(orderId))),
    summary,
    h("h2", null, "Status"),
    live,
    timeline,
    problems,
    traceId ? h("p", { class: "muted small" }, "Trace ", h("a", { href: `#/console/trace/${traceId}`, "data-testid": "order-trace" }, h("code", null, traceId)), " (operators)") : null,
  );

  let last: Order | undefined;
  function show(order: Order): void {
    if (!last || last.status !== order.status) timeline.append(h("li", { "data-status": statusName(order.status) }, h("time", null, time(new Date())), " ", statusName(order.status)));
    last = order;
    replace(
      summary,
      h("p", null, statusBadge(order), " placed ", dateTime(order.createdAt)),
      outcome(order),
      h(
        "table",
        { class: "table" },
        h("thead", null, h("tr", null, h("th", null, "Product"), h("th", { class: "num" }, "Qty"), h("th", { class: "num" }, "Price"), h("th", { class: "num" }, "Total"))),
        h(
          "tbody",
          null,
          order.items.map((i) => h("tr", null, h("td", null, i.name), h("td", { class: "num" }, i.quantity), h("td", { class: "num" }, money(i.unitPrice)), h("td", { class: "num" }, money(i.lineTotal)))),
        ),
        h("tfoot", null, h("tr", null, h("th", { colspan: 3 }, "Total"), h("th", { class: "num" }, money(order.total)))),
      ),
    );
  }

  async function watch(): Promise<void> {
    replace(problems);
    live.textContent = "● Live: this page updates as the order moves.";
    try {
      for await (const update of orders.watchOrder({ orderId }, { signal })) {
        if (update.order) show(update.order);
      }
      live.textContent = last && isFinal(last.status) ? "Final status." : "";
      // The stream is bounded by its deadline; a saga that outlives it is watched again.
      if (last && !isFinal(last.status) && !signal.aborted) return watch();
    } catch (err) {
      if (isNavigationAbort(err, signal)) return;
      live.textContent = "";
      replace(problems, errorBox(err, h("button", { type: "button", onclick: () => void watch() }, "Watch again")));
    }
  }
  await watch();
};

export const ordersPage: Page = async (main, { signal }) => {
  const { orders: list } = await orders.listOrders({ pageSize: 50 }, { signal });
  replace(
    main,
    h("h1", null, "Your orders"),
    list.length === 0
      ? h("p", null, "No orders yet. ", h("a", { href: "#/" }, "Browse the catalog"))
      : h(
          "table",
          { class: "table", "data-testid": "orders" },
          h("thead", null, h("tr", null, h("th", null, "Order"), h("th", null, "Placed"), h("th", null, "Items"), h("th", { class: "num" }, "Total"), h("th", null, "Status"))),
          h(
            "tbody",
            null,
            list.map((o) =>
              h(
                "tr",
                { "data-order": o.orderId },
                h("td", null, h("a", { href: `#/orders/${o.orderId}` }, h("code", null, shortId(o.orderId)))),
                h("td", null, dateTime(o.createdAt)),
                h("td", null, o.items.map((i) => `${i.quantity} × ${i.name}`).join(", ")),
                h("td", { class: "num" }, money(o.total)),
                h("td", null, statusBadge(o), o.cancelReason ? h("div", { class: "muted small" }, o.cancelReason) : null),
              ),
            ),
          ),
        ),
  );
};
