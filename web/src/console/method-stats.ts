// Per method: request rate, error rate and p99 latency over the last minute,
// from the platform's Prometheus metrics. Rows that need a look stand out:
// any error, or a p99 past half the method's deadline.
import type { MethodStats } from "../../../gen/mesh/v1/ops_pb.js";
import { ops } from "./operator-clients.ts";
import { h, replace } from "../dom.ts";
import type { Panel } from "./console.ts";

const WINDOW_SECONDS = 60;

const rate = (n: number) => (n >= 10 ? n.toFixed(0) : n >= 0.1 ? n.toFixed(2) : n > 0 ? n.toFixed(3) : "0");
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

function row(m: MethodStats): HTMLElement {
  const slow = m.deadlineMs > 0 && m.p99Ms > m.deadlineMs / 2;
  const codes = Object.entries(m.errorsByCode)
    .map(([code, n]) => `${code} ×${n}`)
    .join(", ");
  return h(
    "tr",
    { "data-method": `${m.grpcService}/${m.method}`, class: m.errors > 0 ? "row-error" : slow ? "row-warn" : m.requests === 0 ? "row-idle" : undefined },
    h("td", null, m.service),
    h("td", { title: `${m.grpcService}/${m.method}` }, h("code", null, m.method)),
    h("td", { class: "num" }, rate(m.requestsPerSecond)),
    h("td", { class: "num" }, m.requests > 0 ? `${(m.errorRatio * 100).toFixed(1)} %` : "—", codes ? h("div", { class: "small" }, codes) : null),
    h("td", { class: "num" }, m.requests > 0 ? ms(m.p99Ms) : "—"),
    h("td", { class: "num muted" }, m.deadlineMs > 0 ? m.deadlineMs : "—"),
    h("td", { class: "num" }, m.requests),
    h("td", { class: "num" }, m.inFlight),
  );
}

export function methodStatsPanel(): Panel {
  const body = h("tbody");
  const caption = h("span", { class: "muted small" });
  const element = h(
    "section",
    { "data-testid": "method-stats" },
    h("h2", null, "Methods ", caption),
    h(
      "table",
      { class: "table compact" },
      h(
        "thead",
        null,
        h("tr", null, h("th", null, "Service"), h("th", null, "Method"), h("th", { class: "num" }, "req/s"), h("th", { class: "num" }, "errors"), h("th", { class: "num" }, "p99 ms"), h("th", { class: "num" }, "deadline ms"), h("th", { class: "num" }, "calls"), h("th", { class: "num" }, "in flight")),
      ),
      body,
    ),
  );
  return {
    element,
    async refresh(signal) {
      const res = await ops.getMethodStats({ windowSeconds: WINDOW_SECONDS }, { signal });
      caption.textContent = `over the last ${Math.round(res.windowSeconds)} s`;
      replace(body, res.methods.length === 0 ? h("tr", null, h("td", { colspan: 8, class: "muted" }, "No calls yet.")) : res.methods.map(row));
    },
  };
}
