// Traces from the in-memory ring of finished spans: summaries of the most
// recent ones, one trace's spans for a waterfall, and the edges between
// services that the spans show (calls, and events handled by another service).
import { SpanKind as OtelSpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { HrTime } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { EdgeKind, SpanKind } from "../../gen/mesh/v1/ops_pb.js";
import type { SpanSchema, TraceSummarySchema } from "../../gen/mesh/v1/ops_pb.js";

export interface SpanSource {
  /** Finished spans, oldest first. */
  all(): readonly ReadableSpan[];
}

const hrMs = (t: HrTime) => t[0] * 1000 + t[1] / 1e6;

/** The topology name of the service that recorded a span: the server's or consumer's service, else the caller's. */
export function serviceOfSpan(span: ReadableSpan, nameGrpcService: (grpcService: string) => string): string {
  const a = span.attributes;
  if (typeof a["shop.service"] === "string") return a["shop.service"];
  if (typeof a["shop.caller"] === "string") return a["shop.caller"];
  if (typeof a["rpc.service"] === "string") return nameGrpcService(a["rpc.service"]);
  return "unknown";
}

const kinds: Record<number, SpanKind> = {
  [OtelSpanKind.INTERNAL]: SpanKind.INTERNAL,
  [OtelSpanKind.SERVER]: SpanKind.SERVER,
  [OtelSpanKind.CLIENT]: SpanKind.CLIENT,
  [OtelSpanKind.PRODUCER]: SpanKind.PRODUCER,
  [OtelSpanKind.CONSUMER]: SpanKind.CONSUMER,
};

function groupByTrace(spans: readonly ReadableSpan[]): Map<string, ReadableSpan[]> {
  const traces = new Map<string, ReadableSpan[]>();
  for (const s of spans) {
    const id = s.spanContext().traceId;
    let list = traces.get(id);
    if (!list) traces.set(id, (list = []));
    list.push(s);
  }
  return traces;
}

/** The first-starting span whose parent is not among the trace's recorded spans. */
function rootOf(spans: readonly ReadableSpan[]): ReadableSpan {
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  let root: ReadableSpan | undefined;
  for (const s of spans) {
    const parent = s.parentSpanContext?.spanId;
    if (parent && ids.has(parent)) continue;
    if (!root || hrMs(s.startTime) < hrMs(root.startTime)) root = s;
  }
  return root ?? spans[0];
}

export interface TraceFilter {
  limit: number;
  /** Only traces that touched this service. */
  service?: string;
  errorsOnly?: boolean;
  /** Keep traces whose root is one of the platform's own services. */
  includePlatform?: boolean;
}

export function summarizeTraces(spans: readonly ReadableSpan[], filter: TraceFilter, nameGrpcService: (s: string) => string): Array<MessageInitShape<typeof TraceSummarySchema>> {
  const summaries: Array<MessageInitShape<typeof TraceSummarySchema> & { startMs: number }> = [];
  for (const [traceId, list] of groupByTrace(spans)) {
    const root = rootOf(list);
    const rootService = serviceOfSpan(root, nameGrpcService);
    if (!filter.includePlatform && rootService === "platform") continue;
    const services: string[] = [];
    let start = Infinity;
    let end = -Infinity;
    let error = false;
    for (const s of [...list].sort((a, b) => hrMs(a.startTime) - hrMs(b.startTime))) {
      const service = serviceOfSpan(s, nameGrpcService);
      if (!services.includes(service)) services.push(service);
      start = Math.min(start, hrMs(s.startTime));
      end = Math.max(end, hrMs(s.endTime));
      if (s.status.code === SpanStatusCode.ERROR) error = true;
    }
    if (filter.service && !services.includes(filter.service)) continue;
    if (filter.errorsOnly && !error) continue;
    summaries.push({
      traceId,
      rootName: root.name,
      rootService,
      services,
      startedAt: timestampFromMs(Math.round(start)),
      durationMs: end - start,
      spanCount: list.length,
      error,
      startMs: start,
    });
  }
  summaries.sort((a, b) => b.startMs - a.startMs);
  return summaries.slice(0, filter.limit).map(({ startMs: _, ...s }) => s);
}

export function spansOfTrace(spans: readonly ReadableSpan[], traceId: string, instance: string, nameGrpcService: (s: string) => string): Array<MessageInitShape<typeof SpanSchema>> {
  const list = spans.filter((s) => s.spanContext().traceId === traceId).sort((a, b) => hrMs(a.startTime) - hrMs(b.startTime));
  if (list.length === 0) return [];
  const first = hrMs(list[0].startTime);
  return list.map((s) => {
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.attributes)) if (v !== undefined) attributes[k] = String(v);
    return {
      spanId: s.spanContext().spanId,
      parentSpanId: s.parentSpanContext?.spanId ?? "",
      name: s.name,
      service: serviceOfSpan(s, nameGrpcService),
      kind: kinds[s.kind] ?? SpanKind.UNSPECIFIED,
      startedAt: timestampFromMs(Math.round(hrMs(s.startTime))),
      startOffsetMs: hrMs(s.startTime) - first,
      durationMs: hrMs(s.duration),
      error: s.status.code === SpanStatusCode.ERROR,
      statusMessage: s.status.message ?? "",
      attributes,
      instance,
    };
  });
}

export interface ObservedEdge {
  source: string;
  target: string;
  kind: EdgeKind;
  count: number;
  errors: number;
}

/**
 * Edges the recent spans show: a client span is a call from its caller to
 * the service that owns the method; a consumer span whose parent is recorded
 * is an event from the parent's service to the consumer's.
 */
export function observedEdges(spans: readonly ReadableSpan[], nameGrpcService: (s: string) => string): ObservedEdge[] {
  const byId = new Map<string, ReadableSpan>();
  for (const s of spans) byId.set(s.spanContext().spanId, s);
  const edges = new Map<string, ObservedEdge>();
  const add = (source: string, target: string, kind: EdgeKind, failed: boolean) => {
    if (source === target) return;
    const id = `${kind}:${source}>${target}`;
    let e = edges.get(id);
    if (!e) edges.set(id, (e = { source, target, kind, count: 0, errors: 0 }));
    e.count++;
    if (failed) e.errors++;
  };
  for (const s of spans) {
    const failed = s.status.code === SpanStatusCode.ERROR;
    if (s.kind === OtelSpanKind.CLIENT && typeof s.attributes["rpc.service"] === "string") {
      add(serviceOfSpan(s, nameGrpcService), nameGrpcService(s.attributes["rpc.service"]), EdgeKind.CALL, failed);
    } else if (s.kind === OtelSpanKind.CONSUMER) {
      const parent = s.parentSpanContext ? byId.get(s.parentSpanContext.spanId) : undefined;
      if (parent) add(serviceOfSpan(parent, nameGrpcService), serviceOfSpan(s, nameGrpcService), EdgeKind.EVENT, failed);
    }
  }
  return [...edges.values()];
}
