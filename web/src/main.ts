// The app shell: the header, a hash router and the safety net that turns any
// failure into a readable message instead of a blank page.
import "./styles.css";
import { h, replace } from "./dom.ts";
import { errorBox } from "./errors.ts";
import { cartCount } from "./cart.ts";
import { currentSession, endSession } from "./session.ts";
import { catalogPage, productPage } from "./pages/catalog.ts";
import { loginPage, signupPage } from "./pages/account.ts";
import { cartPage } from "./pages/cart.ts";
import { orderPage, ordersPage } from "./pages/orders.ts";
import { notificationsPage } from "./pages/notifications.ts";
import { profilePage } from "./pages/profile.ts";
import type { Page } from "./page.ts";

// The console is for operators: its code loads only when it is opened.
const consolePage: Page = async (main, ctx) => (await import("./console/console.ts")).consolePage(main, ctx);

const routes: Array<[RegExp, Page]> = [
  [/^\/$/, catalogPage],
  [/^\/product\/([a-z0-9-]+)$/, productPage],
  [/^\/signup$/, signupPage],
  [/^\/login$/, loginPage],
  [/^\/cart$/, cartPage],
  [/^\/orders$/, ordersPage],
  [/^\/orders\/([0-9a-f-]+)$/, orderPage],
  [/^\/notifications$/, notificationsPage],
  [/^\/profile$/, profilePage],
  [/^\/console(?:\/trace\/([0-9a-f]{32}))?$/, consolePage],
];

const main = document.getElementById("main")!;
const top = document.getElementById("top")!;
let current: AbortController | undefined;

function renderHeader(): void {
  const session = currentSession();
  const path = location.hash.slice(1).split("?")[0] || "/";
  const link = (href: string, label: string, extra?: string | number) =>
    h("a", { href: `#${href}`, class: path === href || (href !== "/" && path.startsWith(href)) ? "active" : undefined }, label, extra !== undefined ? h("span", { class: "badge", "data-testid": "cart-count" }, extra) : null);
  replace(
    top,
    h(
      "nav",
      { class: "bar" },
      h("a", { href: "#/", class: "brand" }, "☕ Shop"),
      link("/", "Catalog"),
      link("/cart", "Cart", cartCount()),
      session ? [link("/orders", "Orders"), link("/notifications", "Notifications"), link("/profile", "Profile")] : null,
      h("span", { class: "spacer" }),
      session
        ? [
            h("span", { class: "who", "data-testid": "who" }, session.user.displayName),
            h("button", { class: "link", type: "button", onclick: () => (endSession(), (location.hash = "#/")) }, "Log out"),
          ]
        : [link("/login", "Log in"), link("/signup", "Sign up")],
      link("/console", "Console"),
    ),
  );
}

async function route(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  renderHeader();
  const [path, query = ""] = (location.hash.slice(1) || "/").split("?");
  const found = routes.map(([re, page]) => [re.exec(path), page] as const).find(([m]) => m);
  if (!found) {
    replace(main, h("h1", null, "Page not found"), h("p", null, "Nothing lives at ", h("code", null, path), ". ", h("a", { href: "#/" }, "Back to the catalog")));
    return;
  }
  const [match, page] = found;
  main.className = "";
  replace(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await page(main, { params: match!.slice(1), query: new URLSearchParams(query), signal: controller.signal });
  } catch (err) {
    if (controller.signal.aborted) return;
    replace(main, errorBox(err, h("button", { type: "button", onclick: () => void route() }, "Try again")));
  }
}

// The safety net: whatever escapes a page still ends as a message.
function showUnexpected(err: unknown): void {
  main.prepend(errorBox(err, h("button", { type: "button", onclick: () => location.reload() }, "Reload the page")));
}
window.addEventListener("error", (e) => showUnexpected(e.error ?? e.message));
window.addEventListener("unhandledrejection", (e) => showUnexpected(e.reason));

window.addEventListener("hashchange", () => void route());
window.addEventListener("shop:cart", renderHeader);
window.addEventListener("shop:session", renderHeader);
void route();
