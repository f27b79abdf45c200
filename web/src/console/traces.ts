// The most recent traces; one of them as a waterfall across services; and
// the log lines that carry its trace id, those of the clicked span first in
// line. An order's trace runs from CreateOrder through every event handler
// of the saga.
import type { LogLine, Span, TraceSummary } from "../../../gen/mesh/v1/ops_pb.js";
import { SpanKind } from "../../../gen/mesh/v1/ops_pb.js";
import { ops } from "./operator-clients.ts";
import { h, replace } from "../dom.ts";
import { time } from "../format.ts";
import type { Panel } from "./console.ts";

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626", "#475569"];
const colors = new Map<string, string>();
export function serviceColor(service: string): string {
  if (!colors.has(service)) colors.set(service, PALETTE[colors.size % PALETTE.length]);
  return colors.get(service)!;
}

const chip = (service: string) => h("span", { class: "svc", style: `--svc:${serviceColor(service)}` }, service);
const fmtMs = (n: number) => (n >= 100 ? `${n.toFixed(0)} ms` : `${n.toFixed(1)} ms`);

/** Spans in tree order (children under their parent, by start), with their depth. */
function treeOrder(spans: Span[]): Array<{ span: Span; depth: number }> {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) children.set(s.parentSpanId, [...(children.get(s.parentSpanId) ?? []), s]);
    else roots.push(s);
  }
  const out: Array<{ span: Span; depth: number }> = [];
  const walk = (s: Span, depth: number) => {
    out.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort((a, b) => a.startOffsetMs - b.startOffsetMs)) walk(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.startOffsetMs - b.startOffsetMs)) walk(r, 0);
  return out;
}

const kindLabel: Partial<Record<SpanKind, string>> = { [SpanKind.SERVER]: "server", [SpanKind.CLIENT]: "client", [SpanKind.CONSUMER]: "event" };

export function tracesPanel(initialTraceId: string | undefined): Panel {
  let selectedTrace = initialTraceId;
  let selectedSpan: string | undefined;
  let lastSpans: Span[] = [];
  let lastLines: LogLine[] = [];
  // Redrawn only when something changed, so an expanded log line stays open.
  let drawn = "";
  const list = h("tbody");
  const detail = h("div", { class: "trace-detail", "data-testid": "trace-detail" });
  const element = h(
    "section",
    { "data-testid": "traces" },
    h("h2", null, "Recent traces"),
    h(
      "table",
      { class: "table compact clickable" },
      h("thead", null, h("tr", null, h("th", null, "Started"), h("th", null, "Root"), h("th", null, "Services"), h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Duration"))),
      list,
    ),
    detail,
  );

  function select(traceId: string, signal: AbortSignal): void {
    selectedTrace = traceId;
    selectedSpan = undefined;
    drawn = "";
    list.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.trace === traceId));
    // Shareable, without re-running the route.
    history.replaceState(null, "", `#/console/trace/${traceId}`);
    void loadTrace(signal).catch((err: unknown) => replace(detail, String(err)));
  }

  function drawList(traces: TraceSummary[], signal: AbortSignal): void {
    replace(
      list,
      traces.length === 0
        ? h("tr", null, h("td", { colspan: 5, class: "muted" }, "No traces yet."))
        : traces.map((t) =>
            h(
              "tr",
              {
                "data-trace": t.traceId,
                class: [t.traceId === selectedTrace ? "selected" : "", t.error ? "row-error" : ""].join(" ").trim() || undefined,
                tabindex: 0,
                onclick: () => select(t.traceId, signal),
                onkeydown: (e: Event) => (e as KeyboardEvent).key === "Enter" && select(t.traceId, signal),
              },
              h("td", null, time(t.startedAt)),
              h("td", null, h("code", null, t.rootName), t.error ? h("span", { class: "chip chip-error" }, "error") : null),
              h("td", null, t.services.map(chip)),
              h("td", { class: "num" }, t.spanCount),
              h("td", { class: "num" }, fmtMs(t.durationMs)),
            ),
          ),
    );
  }

  function drawDetail(): void {
    if (!selectedTrace) return replace(detail, h("p", { class: "muted" }, "Click a trace to see it as a waterfall, then a span for its log lines."));
    const total = Math.max(1, ...lastSpans.map((s) => s.startOffsetMs + s.durationMs));
    const rows = treeOrder(lastSpans).map(({ span, depth }) =>
      h(
        "div",
        {
          class: `wf-row${span.spanId === selectedSpan ? " selected" : ""}${span.error ? " wf-error" : ""}`,
          "data-span": span.spanId,
          "data-service": span.service,
          tabindex: 0,
          onclick: () => ((selectedSpan = span.spanId === selectedSpan ? undefined : span.spanId), drawDetail()),
        },
        h(
          "div",
          { class: "wf-label", style: `padding-left:${depth * 14 + 4}px` },
          chip(span.service),
          " ",
          h("span", { class: "wf-name", title: span.name }, span.name),
          kindLabel[span.kind] ? h("span", { class: "muted small" }, ` ${kindLabel[span.kind]}`) : null,
        ),
        h(
          "div",
          { class: "wf-track" },
          h("div", {
            class: "wf-bar",
            style: `left:${(span.startOffsetMs / total) * 100}%;width:${Math.max(0.4, (span.durationMs / total) * 100)}%;--svc:${serviceColor(span.service)}`,
          }),
          h("span", { class: "wf-time", style: `left:${Math.min(88, (span.startOffsetMs / total) * 100)}%` }, fmtMs(span.durationMs), span.error ? ` ${span.statusMessage}` : ""),
        ),
      ),
    );
    const lines = selectedSpan ? [...lastLines.filter((l) => l.spanId === selectedSpan), ...lastLines.filter((l) => l.spanId !== selectedSpan)] : lastLines;
    replace(
      detail,
      h("h3", null, "Trace ", h("code", { "data-testid": "trace-id" }, selectedTrace), " ", h("span", { class: "muted small" }, `${lastSpans.length} spans, ${fmtMs(total)}`)),
      h("div", { class: "waterfall", "data-testid": "waterfall" }, rows),
      h("h3", null, "Log lines of this trace", selectedSpan ? h("span", { class: "muted small" }, ` (span ${selectedSpan} first)`) : null),
      lines.length === 0
        ? h("p", { class: "muted" }, "No log lines with this trace id are held.")
        : h(
            "table",
            { class: "table compact logs", "data-testid": "logs" },
            h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "Level"), h("th", null, "Service"), h("th", null, "Message"))),
            h(
              "tbody",
              null,
              lines.map((l) =>
                h(
                  "tr",
                  { class: `${l.spanId === selectedSpan ? "selected " : ""}level-${l.level}`, "data-span": l.spanId },
                  h("td", { class: "small" }, time(l.time)),
                  h("td", null, l.level),
                  h("td", null, l.service ? chip(l.service) : ""),
                  h("td", null, h("details", null, h("summary", null, summaryOf(l)), h("pre", null, pretty(l.json)))),
                ),
              ),
            ),
          ),
    );
  }

  async function loadTrace(signal: AbortSignal): Promise<void> {
    if (!selectedTrace) return drawDetail();
    const traceId = selectedTrace;
    const [trace, logs] = await Promise.all([ops.getTrace({ traceId }, { signal }), ops.listLogLines({ traceId, pageSize: 500 }, { signal })]);
    if (traceId !== selectedTrace) return;
    const signature = `${traceId}:${trace.spans.length}:${logs.lines.length}`;
    lastSpans = trace.spans;
    lastLines = logs.lines;
    if (signature !== drawn) drawDetail();
    drawn = signature;
  }

  return {
    element,
    async refresh(signal) {
      const { traces } = await ops.listRecentTraces({ pageSize: 15 }, { signal });
      drawList(traces, signal);
      await loadTrace(signal);
    },
  };
}

function summaryOf(l: LogLine): string {
  try {
    const o = JSON.parse(l.json) as Record<string, unknown>;
    if (l.message === "rpc") return `rpc ${String(o.service ?? "")}/${String(o.method ?? "")} ${String(o.code ?? "")} ${String(o.duration_ms ?? "")} ms`;
  } catch {
    // Not JSON after all: the message alone says enough.
  }
  return l.message;
}

function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}
