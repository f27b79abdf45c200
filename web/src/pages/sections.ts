// A page section the storefront could not fill: the server marks it degraded
// with a reason, and the page says so in place of the section, calmly,
// while everything else on the page works.
import { h } from "../dom.ts";

export function degradedNotice(section: string, reason: string): HTMLElement {
  return h(
    "div",
    { class: "degraded", role: "status", "data-testid": "degraded", "data-section": section },
    h("strong", null, `${section} cannot be shown right now.`),
    h("p", null, "The rest of this page is up to date. Try again in a minute."),
    reason ? h("p", { class: "muted small" }, "Reason: ", h("code", null, reason)) : null,
  );
}
