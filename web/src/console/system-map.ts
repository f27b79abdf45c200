// The services and who calls whom, each with its live health. Callers sit
// above the services they call (a layered drawing from the topology's call
// graph); solid arrows are the synchronous calls the topology allows, dashed
// ones the event flows seen in recent traces, each with how many were seen.
// Under it, the call paths from the edge with their depth, tries and
// deadlines (call-paths.ts).
import type { GetSystemMapResponse, ServiceEdge, ServiceNode } from "../../../gen/mesh/v1/ops_pb.js";
import { EdgeKind, ServingState } from "../../../gen/mesh/v1/ops_pb.js";
import { callPathsSection } from "./call-paths.ts";
import { ops } from "./operator-clients.ts";
import { h, replace, svg } from "../dom.ts";
import type { Panel } from "./console.ts";

const W = 860;
const ROW = 120;
const NODE_W = 128;
const NODE_H = 52;

export const stateName = (s: ServingState) => ServingState[s] ?? "UNSPECIFIED";

interface Placed {
  node: ServiceNode;
  x: number;
  y: number;
}

/**
 * Layers by call depth: services that call nobody at the bottom, each caller
 * above what it calls. The bottom row is spread evenly; a caller sits over
 * the middle of its callees, pushed apart from its neighbours when they meet.
 */
function layout(map: GetSystemMapResponse): Map<string, Placed> {
  const calls = new Map<string, string[]>();
  for (const e of map.edges) if (e.kind === EdgeKind.CALL) calls.set(e.source, [...(calls.get(e.source) ?? []), e.target]);
  const depth = new Map<string, number>();
  const depthOf = (name: string, seen: Set<string>): number => {
    if (depth.has(name)) return depth.get(name)!;
    if (seen.has(name)) return 0;
    seen.add(name);
    const d = Math.max(-1, ...(calls.get(name) ?? []).map((c) => depthOf(c, seen))) + 1;
    depth.set(name, d);
    return d;
  };
  for (const n of map.services) depthOf(n.name, new Set());
  const maxDepth = Math.max(0, ...depth.values());
  const placed = new Map<string, Placed>();
  for (let d = 0; d <= maxDepth; d++) {
    const row = map.services.filter((n) => (depth.get(n.name) ?? 0) === d);
    const y = 50 + (maxDepth - d) * ROW;
    if (d === 0) {
      row.forEach((node, i) => placed.set(node.name, { node, x: ((i + 0.5) * W) / row.length, y }));
      continue;
    }
    const wanted = row
      .map((node) => {
        const xs = (calls.get(node.name) ?? []).map((c) => placed.get(c)?.x ?? W / 2);
        return { node, x: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length) };
      })
      .sort((a, b) => a.x - b.x);
    // A caller straight above a service of a middle row would hide the
    // longer edges behind it: move it a column aside.
    const middle = [...placed.values()].filter((p) => p.y > y && p.y < 50 + maxDepth * ROW);
    let minX = NODE_W / 2 + 8;
    for (const w of wanted) {
      let x = w.x;
      if (middle.some((p) => Math.abs(p.x - x) < NODE_W)) x += NODE_W * 1.2;
      x = Math.min(Math.max(x, minX), W - NODE_W / 2 - 8);
      placed.set(w.node.name, { node: w.node, x, y });
      minX = x + NODE_W + 24;
    }
  }
  return placed;
}

/** Where the segment from a's centre towards b leaves a's box. */
function boxEdge(a: Placed, bx: number, by: number): [number, number] {
  const dx = bx - a.x;
  const dy = by - a.y;
  const t = Math.min(Math.abs((NODE_W / 2 + 4) / (dx || 1e-9)), Math.abs((NODE_H / 2 + 4) / (dy || 1e-9)));
  return [a.x + dx * t, a.y + dy * t];
}

/** True when the straight segment from a to b passes through another node's box. */
function hitsANode(a: Placed, b: Placed, nodes: Iterable<Placed>): boolean {
  for (const n of nodes) {
    if (n === a || n === b) continue;
    for (let t = 0.1; t < 1; t += 0.05) {
      const x = a.x + (b.x - a.x) * t;
      const y = a.y + (b.y - a.y) * t;
      if (Math.abs(x - n.x) < NODE_W / 2 + 6 && Math.abs(y - n.y) < NODE_H / 2 + 6) return true;
    }
  }
  return false;
}

function edgePath(e: ServiceEdge, from: Placed, to: Placed, nodes: Iterable<Placed>): { d: string; labelX: number; labelY: number } {
  // Event edges bend (to the right of their direction), so A→B and B→A stay
  // apart; a call bends only to go round a node in its way.
  const bend = e.kind === EdgeKind.EVENT ? 0.18 : from.y === to.y || hitsANode(from, to, nodes) ? 0.3 : 0;
  const mx = (from.x + to.x) / 2;
  const my = (from.y + to.y) / 2;
  const cx = mx - (to.y - from.y) * bend;
  const cy = my + (to.x - from.x) * bend;
  const [sx, sy] = boxEdge(from, cx, cy);
  const [tx, ty] = boxEdge(to, cx, cy);
  return { d: `M${sx},${sy} Q${cx},${cy} ${tx},${ty}`, labelX: (sx + 2 * cx + tx) / 4, labelY: (sy + 2 * cy + ty) / 4 };
}

function drawMap(map: GetSystemMapResponse): SVGElement {
  const placed = layout(map);
  // Room below the bottom row for the event arcs between its services.
  const height = Math.max(...[...placed.values()].map((p) => p.y)) + 90;
  const marker = (id: string, color: string) =>
    svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color }));
  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, class: "map", role: "img", "aria-label": "Map of the services and who calls whom" });
  root.append(svg("defs", {}, marker("arrow-call", "#475569"), marker("arrow-event", "#7c3aed"), marker("arrow-error", "#dc2626")));
  for (const e of map.edges) {
    const from = placed.get(e.source);
    const to = placed.get(e.target);
    if (!from || !to) continue;
    const { d, labelX, labelY } = edgePath(e, from, to, placed.values());
    const failing = e.recentErrors > 0;
    const cls = `edge edge-${e.kind === EdgeKind.EVENT ? "event" : "call"}${failing ? " edge-failing" : ""}`;
    root.append(svg("path", { d, class: cls, "marker-end": `url(#arrow-${failing ? "error" : e.kind === EdgeKind.EVENT ? "event" : "call"})` }));
    if (e.recentCount > 0) {
      const label = failing ? `${e.recentCount} (${e.recentErrors} failed)` : String(e.recentCount);
      root.append(svg("text", { x: labelX, y: labelY, class: "edge-label" }, label));
    }
  }
  for (const p of placed.values()) {
    const state = stateName(p.node.state);
    root.append(
      svg(
        "g",
        { class: `node node-${state.toLowerCase()}`, transform: `translate(${p.x - NODE_W / 2},${p.y - NODE_H / 2})` },
        svg("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
        svg("text", { x: NODE_W / 2, y: 22, class: "node-name" }, p.node.name),
        svg("text", { x: NODE_W / 2, y: 40, class: "node-state" }, state),
      ),
    );
  }
  return root;
}

export function systemMapPanel(): Panel {
  const drawing = h("div", { class: "map-wrap" });
  const table = h("tbody");
  const summary = h("span", { "data-testid": "health-summary" });
  const paths = callPathsSection();
  const services = h(
    "section",
    { "data-testid": "system-map" },
    h("h2", null, "Services ", summary),
    h(
      "div",
      { class: "services-body" },
      h(
        "div",
        null,
        drawing,
        h(
          "p",
          { class: "legend muted small" },
          h("span", { class: "key key-call" }),
          " call allowed by the topology   ",
          h("span", { class: "key key-event" }),
          " events seen in recent traces   numbers: seen in the recent spans",
        ),
      ),
      h("table", { class: "table compact" }, h("thead", null, h("tr", null, h("th", null, "Service"), h("th", null, "Health"), h("th", null, "gRPC services, per instance"), h("th", null, "Calls"), h("th", { class: "num", title: "replicas in the mesh" }, "Replicas"))), table),
    ),
  );
  return {
    element: h("div", null, services, paths.element),
    async refresh(signal) {
      const map = await ops.getSystemMap({}, { signal });
      paths.update(map);
      const down = map.services.filter((s) => s.state !== ServingState.SERVING);
      summary.className = down.length === 0 ? "health health-serving" : "health health-not_serving";
      summary.textContent =
        down.length === 0 ? `all ${map.services.length} SERVING` : `${down.length} of ${map.services.length} not serving: ${down.map((s) => `${s.name} (${stateName(s.state)})`).join(", ")}`;
      replace(drawing, drawMap(map));
      replace(
        table,
        map.services.map((s) => {
          const state = stateName(s.state);
          return h(
            "tr",
            { "data-service": s.name, "data-state": state },
            h("td", null, h("strong", null, s.name), s.exposed ? h("span", { class: "chip", title: "reachable through the edge" }, "edge") : null),
            h("td", null, h("span", { class: `health health-${state.toLowerCase()}` }, state)),
            h(
              "td",
              { class: "small" },
              s.grpcServices.map((g) =>
                h("div", { title: g.grpcService }, h("code", null, g.grpcService.slice(g.grpcService.lastIndexOf(".") + 1)), " ", h("span", { class: "muted" }, `${stateName(g.state)} on ${g.instance}`)),
              ),
            ),
            h("td", { class: "small" }, map.edges.filter((e) => e.kind === EdgeKind.CALL && e.source === s.name).map((e) => e.target).join(", ") || "—"),
            h("td", { class: "num" }, s.replicas),
          );
        }),
      );
    },
  };
}
