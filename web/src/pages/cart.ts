// The cart, priced by the catalog at today's prices, and "Place order". The
// payment methods offered are the contract's closed set, so the form never
// sends one the shop refuses.
import { getOption } from "@bufbuild/protobuf";
import { rules } from "../../../gen/mesh/v1/options_pb.js";
import { CreateOrderRequestSchema } from "../../../gen/shop/orders/v1/orders_pb.js";
import { catalog, newTrace, orders } from "../api.ts";
import { readCart, emptyCart, setQuantity } from "../cart.ts";
import { h, replace } from "../dom.ts";
import { errorBox, showFormError } from "../errors.ts";
import { money } from "../format.ts";
import type { Page } from "../page.ts";
import { currentSession } from "../session.ts";
import { rememberOrderTrace } from "./orders.ts";

/** CreateOrderRequest.payment_method's (mesh.v1.rules) in: every method the shop accepts, first the default. */
const PAYMENT_METHODS = getOption(CreateOrderRequestSchema.field.paymentMethod, rules).in;
const PAYMENT_LABELS: Record<string, string> = {
  pm_card_ok: "Test card — approved",
  pm_card_declined: "Test card — declined",
  pm_card_insufficient_funds: "Test card — insufficient funds",
};

export const cartPage: Page = async (main, { signal }) => {
  const cart = readCart();
  if (cart.lines.length === 0) {
    replace(main, h("h1", null, "Cart"), h("p", null, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the catalog")));
    return;
  }
  // Prices come from the catalog now, not from when the item was added.
  let quote: Awaited<ReturnType<typeof catalog.quotePrice>> | undefined;
  let quoteError: unknown;
  try {
    quote = await catalog.quotePrice({ items: cart.lines.map((l) => ({ sku: l.sku, quantity: l.quantity })) }, { signal });
  } catch (err) {
    if (signal.aborted) return;
    quoteError = err;
  }
  const rerender = () => void cartPage(main, { params: [], query: new URLSearchParams(), signal });
  const rows = cart.lines.map((l, i) => {
    const priced = quote?.lines.find((q) => q.sku === l.sku);
    return h(
      "tr",
      { "data-sku": l.sku },
      h("td", null, l.name),
      h(
        "td",
        null,
        h("input", {
          type: "number",
          min: 0,
          max: 1000,
          value: l.quantity,
          // The server names bad items by position: items[<i>].quantity.
          name: `items[${i}].quantity`,
          "aria-label": `Quantity of ${l.name}`,
          onchange: (e: Event) => (setQuantity(l.sku, Math.floor(Number((e.target as HTMLInputElement).value)) || 0), rerender()),
        }),
      ),
      h("td", { class: "num" }, money(priced?.unitPrice)),
      h("td", { class: "num" }, money(priced?.lineTotal)),
      h("td", null, h("button", { type: "button", class: "link", onclick: () => (setQuantity(l.sku, 0), rerender()) }, "Remove")),
    );
  });
  const session = currentSession();
  const form: HTMLFormElement = h(
    "form",
    { class: "form wide", novalidate: true, "data-testid": "checkout", onsubmit: (e: Event) => (e.preventDefault(), void placeOrder()) },
    h(
      "table",
      { class: "table" },
      h("thead", null, h("tr", null, h("th", null, "Product"), h("th", null, "Quantity"), h("th", { class: "num" }, "Price"), h("th", { class: "num" }, "Total"), h("th"))),
      h("tbody", null, rows),
      h("tfoot", null, h("tr", null, h("th", { colspan: 3 }, "Total"), h("th", { class: "num", "data-testid": "cart-total" }, money(quote?.total)), h("th"))),
    ),
    quoteError ? errorBox(quoteError) : null,
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-payment" }, "Payment"),
      h(
        "select",
        { id: "f-payment", name: "payment_method" },
        ...PAYMENT_METHODS.map((value) => h("option", { value }, PAYMENT_LABELS[value] ?? value)),
      ),
    ),
    session
      ? h("button", { type: "submit" }, "Place order")
      : h("p", null, h("a", { href: "#/login?next=cart" }, "Log in"), " to place your order."),
  );
  replace(main, h("h1", null, "Cart"), form);

  async function placeOrder(): Promise<void> {
    const button = form.querySelector("button[type=submit]") as HTMLButtonElement;
    button.disabled = true;
    button.textContent = "Placing order…";
    const trace = newTrace();
    try {
      const { order } = await orders.createOrder(
        {
          idempotencyKey: cart.idempotencyKey,
          items: cart.lines.map((l) => ({ sku: l.sku, quantity: l.quantity })),
          paymentMethod: (form.elements.namedItem("payment_method") as HTMLSelectElement).value,
        },
        { headers: trace.headers },
      );
      rememberOrderTrace(order!.orderId, trace.traceId);
      emptyCart();
      location.hash = `#/orders/${order!.orderId}`;
    } catch (err) {
      showFormError(form, err);
      button.disabled = false;
      button.textContent = "Place order";
    }
  }
};
