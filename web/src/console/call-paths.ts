// The call paths from the edge under the system map, as the contracts check
// computes them (GetSystemMap's call_paths, from contracts/): per path its
// depth in synchronous hops, how many tries of its last method one call at
// the edge may cause, and the deadline each hop runs under, against the
// limits topology.json sets. Paths of more than one hop get a row each; the
// one-hop ones are summed up in a line, unless one breaks a limit.
import type { CallHop, CallPath, GetSystemMapResponse } from "../../../gen/mesh/v1/ops_pb.js";
import { h, replace } from "../dom.ts";

/** "/shop.users.v1.UserService/GetProfile" as "UserService/GetProfile". */
const shortMethod = (path: string) => {
  const [service = "", method = ""] = path.slice(1).split("/");
  return `${service.slice(service.lastIndexOf(".") + 1)}/${method}`;
};

const budget = (hop: CallHop) => {
  if (hop.budgetMs === 0) return "no deadline";
  return hop.deadlineMs > hop.budgetMs ? `${hop.budgetMs} ms (of ${hop.deadlineMs})` : `${hop.budgetMs} ms`;
};

function row(path: CallPath): HTMLTableRowElement {
  return h(
    "tr",
    { "data-path": path.hops.map((x) => x.method).join(" "), "data-depth": path.depth, "data-amplification": path.amplification, "data-violations": path.violations.length },
    h("td", { class: "small" }, "edge → ", path.hops.map((x, i) => [i > 0 ? " → " : null, h("code", { title: `${x.service}: ${x.method}` }, shortMethod(x.method))])),
    h("td", { class: "num" }, path.depth),
    h("td", { class: "num", title: path.hops.map((x) => x.attempts).join(" × ") }, `×${path.amplification}`),
    h("td", { class: "small" }, path.hops.map(budget).join(" → ")),
    h("td", { class: "small" }, path.violations.length === 0 ? h("span", { class: "muted" }, "within limits") : path.violations.map((v) => h("span", { class: "chip chip-error" }, v))),
  );
}

export function callPathsSection(): { element: HTMLElement; update(map: GetSystemMapResponse): void } {
  const limits = h("span", { class: "muted small", "data-testid": "call-path-limits" });
  const body = h("tbody");
  const oneHop = h("p", { class: "muted small" });
  const element = h(
    "section",
    { "data-testid": "call-paths" },
    h("h3", null, "Call paths from the edge ", limits),
    h(
      "table",
      { class: "table compact" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", null, "Path"),
          h("th", { class: "num", title: "synchronous hops from the edge" }, "Depth"),
          h("th", { class: "num", title: "tries of the last method one call at the edge may cause: each hop's proxy tries times the client's, multiplied" }, "Tries"),
          h("th", { title: "the deadline each hop runs under on this path (of its contract's, where a caller cuts it)" }, "Deadlines"),
          h("th", null, "Limits"),
        ),
      ),
      body,
    ),
    oneHop,
  );
  return {
    element,
    update(map) {
      const l = map.callPathLimits;
      limits.textContent = l ? `limits: depth ${l.maxDepth}, ×${l.maxAmplification}, deadline margin ${l.deadlineMarginMs} ms (topology.json)` : "";
      const shown = map.callPaths.filter((p) => p.depth > 1 || p.violations.length > 0);
      const rest = map.callPaths.filter((p) => !shown.includes(p));
      replace(body, shown.length > 0 ? shown.map(row) : h("tr", null, h("td", { colspan: 5, class: "muted" }, "no path of more than one hop")));
      oneHop.textContent =
        rest.length === 0 ? "" : `and ${rest.length} one-hop paths (a method the edge calls that calls nothing), at most ×${Math.max(...rest.map((p) => p.amplification))}, each within its contract's deadline`;
    },
  };
}
