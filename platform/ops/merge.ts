// The mesh's view from the instances' views. Each process answers OpsService
// about itself; an aggregator asks every instance the same question and
// merges here. Counts add up (latency buckets too, so the p99 is recomputed
// from the merged histogram, never averaged); spans and log lines are
// unions; a trace's root is the earliest span no instance has a parent for.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { GetMethodStatsResponseSchema, OpsService, ServingState } from "../../gen/mesh/v1/ops_pb.js";
import type {
  GetMethodStatsResponse,
  GetSystemMapResponse,
  GetSystemMapResponseSchema,
  GetTraceResponse,
  ListLogLinesResponse,
  ListRecentTracesResponse,
  MethodStats,
  ServiceEdge,
  ServiceNode,
  Span,
  TraceSummary,
} from "../../gen/mesh/v1/ops_pb.js";
import { quantileFromBuckets } from "./method-stats.ts";

export function mergeSystemMaps(answers: readonly GetSystemMapResponse[]): MessageInitShape<typeof GetSystemMapResponseSchema> {
  const nodes = new Map<string, ServiceNode>();
  const edges = new Map<string, ServiceEdge>();
  for (const a of answers) {
    for (const n of a.services) {
      const known = nodes.get(n.name);
      if (!known) nodes.set(n.name, { ...n, grpcServices: [...n.grpcServices] });
      else known.grpcServices.push(...n.grpcServices);
    }
    for (const e of a.edges) {
      const id = `${e.kind}:${e.source}>${e.target}`;
      const known = edges.get(id);
      if (!known) edges.set(id, { ...e });
      else {
        known.recentCount += e.recentCount;
        known.recentErrors += e.recentErrors;
      }
    }
  }
  for (const n of nodes.values()) {
    n.state =
      n.grpcServices.length === 0
        ? ServingState.UNKNOWN
        : n.grpcServices.every((g) => g.state === ServingState.SERVING)
          ? ServingState.SERVING
          : ServingState.NOT_SERVING;
  }
  // Every instance computes the call paths from the same topology and
  // contracts: the first answer that has them speaks for all.
  const withPaths = answers.find((a) => a.callPaths.length > 0);
  return {
    services: [...nodes.values()],
    edges: [...edges.values()],
    instances: answers.flatMap((a) => a.instances),
    callPaths: withPaths?.callPaths ?? [],
    callPathLimits: withPaths?.callPathLimits,
  };
}

export function mergeMethodStats(answers: readonly GetMethodStatsResponse[]): GetMethodStatsResponse {
  const merged = new Map<string, MethodStats>();
  for (const a of answers) {
    for (const m of a.methods) {
      const id = `${m.grpcService}/${m.method}`;
      const known = merged.get(id);
      if (!known) {
        merged.set(id, { ...m, errorsByCode: { ...m.errorsByCode }, latencyBuckets: m.latencyBuckets.map((b) => ({ ...b })) });
        continue;
      }
      known.requests += m.requests;
      known.errors += m.errors;
      // Each instance's rate is over its own window: rates add up, counts are kept for the ratio.
      known.requestsPerSecond += m.requestsPerSecond;
      known.inFlight += m.inFlight;
      known.deadlineMs = Math.max(known.deadlineMs, m.deadlineMs);
      for (const [code, n] of Object.entries(m.errorsByCode)) known.errorsByCode[code] = (known.errorsByCode[code] ?? 0) + n;
      for (const b of m.latencyBuckets) {
        const same = known.latencyBuckets.find((k) => k.upperBoundSeconds === b.upperBoundSeconds);
        if (same) same.count += b.count;
        else known.latencyBuckets.push({ ...b });
      }
    }
  }
  for (const m of merged.values()) {
    m.latencyBuckets.sort((a, b) => a.upperBoundSeconds - b.upperBoundSeconds);
    m.errorRatio = m.requests > 0 ? m.errors / m.requests : 0;
    m.p99Ms =
      quantileFromBuckets(
        0.99,
        m.latencyBuckets.map((b) => b.upperBoundSeconds),
        m.latencyBuckets.map((b) => b.count),
      ) * 1000;
  }
  const sampled = answers.map((a) => a.sampledAt).filter((t) => t !== undefined);
  return create(GetMethodStatsResponseSchema, {
    methods: [...merged.values()],
    windowSeconds: Math.min(...answers.map((a) => a.windowSeconds)),
    sampledAt: sampled.sort((a, b) => timestampMs(b) - timestampMs(a))[0],
  });
}

export function mergeTraceLists(answers: readonly ListRecentTracesResponse[], limit: number): ListRecentTracesResponse["traces"] {
  const merged = new Map<string, TraceSummary & { startMs: number; endMs: number }>();
  for (const a of answers) {
    for (const t of a.traces) {
      const startMs = t.startedAt ? timestampMs(t.startedAt) : 0;
      const endMs = startMs + t.durationMs;
      const known = merged.get(t.traceId);
      if (!known) {
        merged.set(t.traceId, { ...t, services: [...t.services], startMs, endMs });
        continue;
      }
      if (startMs < known.startMs) {
        // The earlier part holds the root.
        known.rootName = t.rootName;
        known.rootService = t.rootService;
        known.startedAt = t.startedAt;
        known.services = [...t.services, ...known.services.filter((s) => !t.services.includes(s))];
        known.startMs = startMs;
      } else {
        for (const s of t.services) if (!known.services.includes(s)) known.services.push(s);
      }
      known.endMs = Math.max(known.endMs, endMs);
      known.durationMs = known.endMs - known.startMs;
      known.spanCount += t.spanCount;
      known.error ||= t.error;
    }
  }
  return [...merged.values()]
    .sort((a, b) => b.startMs - a.startMs)
    .slice(0, limit)
    .map(({ startMs: _s, endMs: _e, ...t }) => t);
}

export function mergeTraces(answers: readonly GetTraceResponse[]): GetTraceResponse["spans"] {
  const spans = answers.flatMap((a) => a.spans).sort((a, b) => startOf(a) - startOf(b));
  const first = spans.length > 0 ? startOf(spans[0]) : 0;
  return spans.map((s) => ({ ...s, startOffsetMs: startOf(s) - first }));
}

const startOf = (s: Span) => (s.startedAt ? timestampMs(s.startedAt) : 0);

export function mergeLogLines(answers: readonly ListLogLinesResponse[], limit: number): ListLogLinesResponse["lines"] {
  return answers
    .flatMap((a) => a.lines)
    .sort((a, b) => (a.time ? timestampMs(a.time) : 0) - (b.time ? timestampMs(b.time) : 0))
    .slice(-limit);
}

/**
 * The instances an aggregator asks: a fixed list, or a function asked again
 * for every call (instances found through DNS come and go).
 */
export type InstanceSource<T> = ReadonlyArray<T> | (() => ReadonlyArray<T> | Promise<ReadonlyArray<T>>);

export async function instancesFrom<T>(source: InstanceSource<T>): Promise<ReadonlyArray<T>> {
  return typeof source === "function" ? await source() : source;
}

/**
 * OpsService for the whole mesh: asks every instance (through its typed
 * client) and merges. An instance that does not answer is left out; its
 * services then show UNKNOWN unless another replica answered for them.
 */
export function createOpsAggregator(instances: InstanceSource<Client<typeof OpsService>>): ServiceImpl<typeof OpsService> {
  async function all<T>(ask: (c: Client<typeof OpsService>) => Promise<T>): Promise<T[]> {
    const settled = await Promise.allSettled((await instancesFrom(instances)).map(ask));
    const answers = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    if (answers.length === 0 && settled.length > 0) throw new ConnectError("no instance answered", Code.Unavailable);
    return answers;
  }
  return {
    async getSystemMap(req) {
      return mergeSystemMaps(await all((c) => c.getSystemMap(req)));
    },
    async getMethodStats(req) {
      return mergeMethodStats(await all((c) => c.getMethodStats(req)));
    },
    async listRecentTraces(req) {
      return { traces: mergeTraceLists(await all((c) => c.listRecentTraces(req)), req.pageSize > 0 ? req.pageSize : 20) };
    },
    async getTrace(req) {
      // NOT_FOUND from an instance means it holds no span of the trace.
      const answers = await all((c) => c.getTrace(req).catch((err: unknown) => (ConnectError.from(err).code === Code.NotFound ? undefined : Promise.reject(err))));
      const spans = mergeTraces(answers.filter((a) => a !== undefined));
      if (spans.length === 0) throw new ConnectError(`no instance holds a span of trace ${req.traceId}`, Code.NotFound);
      return { traceId: req.traceId, spans };
    },
    async listLogLines(req) {
      return { lines: mergeLogLines(await all((c) => c.listLogLines(req)), req.pageSize > 0 ? req.pageSize : 200) };
    },
  };
}
