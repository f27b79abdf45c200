// The profile page, assembled by the storefront service from users, orders
// and catalog. A section whose dependency was slow or down comes back marked
// degraded: it is shown as such, in place, and the rest of the page stands.
import type { ProfilePage, SectionStatus } from "../../../gen/shop/storefront/v1/storefront_pb.js";
import { storefront } from "../api.ts";
import { h, replace } from "../dom.ts";
import type { Child } from "../dom.ts";
import { dateTime, money, shortId } from "../format.ts";
import type { Page } from "../page.ts";
import { statusBadge } from "./orders.ts";
import { degradedNotice } from "./sections.ts";

function section(title: string, status: SectionStatus | undefined, body: () => Child): HTMLElement {
  return h(
    "section",
    { class: "section", "data-section": title, "data-degraded": status?.degraded ? "true" : "false" },
    h("h2", null, title),
    status?.degraded ? degradedNotice(title, status.reason) : body(),
  );
}

/** The page from GetProfilePage's answer; pure, so any answer (degraded or not) renders the same way. */
export function renderProfilePage(page: ProfilePage | undefined): HTMLElement {
  const user = page?.user;
  const recent = page?.recentOrders;
  const recs = page?.recommendations;
  return h(
    "div",
    { class: "profile" },
    section("Your details", user?.status, () =>
      user?.user
        ? h(
            "dl",
            { class: "details" },
            h("dt", null, "Name"),
            h("dd", { "data-testid": "profile-name" }, user.user.displayName),
            h("dt", null, "Email"),
            h("dd", null, user.user.email),
            h("dt", null, "Member since"),
            h("dd", null, dateTime(user.user.createdAt)),
          )
        : h("p", { class: "muted" }, "No details."),
    ),
    section("Recent orders", recent?.status, () =>
      recent && recent.orders.length > 0
        ? h(
            "ul",
            { class: "plain" },
            recent.orders.map((o) => h("li", null, h("a", { href: `#/orders/${o.orderId}` }, h("code", null, shortId(o.orderId))), " ", statusBadge(o), " ", money(o.total))),
          )
        : h("p", { class: "muted" }, "No orders yet."),
    ),
    section("Recommended for you", recs?.status, () =>
      h(
        "ul",
        { class: "plain" },
        (recs?.products ?? []).map((p) => h("li", null, h("a", { href: `#/product/${p.sku}` }, p.name), " ", h("span", { class: "muted" }, money(p.price)))),
      ),
    ),
  );
}

export const profilePage: Page = async (main, { signal }) => {
  const { page } = await storefront.getProfilePage({}, { signal });
  replace(main, h("h1", null, "Profile"), renderProfilePage(page));
};
