// mesh.v1.OpsService over one process: its health registry, its metrics
// registry, its ring of recent spans and its ring of recent log lines.
// Everything it answers names the instance it comes from and keeps raw
// counts, so an aggregator can ask every instance of the mesh the same
// question and merge the answers (see merge.ts).
import { hostname } from "node:os";
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { EdgeKind, OpsService, ServingState } from "../../gen/mesh/v1/ops_pb.js";
import type { GetSystemMapResponseSchema, ServiceEdgeSchema, ServiceNodeSchema } from "../../gen/mesh/v1/ops_pb.js";
import { contractOf } from "../contract.ts";
import { ServingStatus } from "../health.ts";
import type { HealthRegistry } from "../health.ts";
import { recentLogLines } from "../telemetry/logger.ts";
import type { LogRing } from "../telemetry/logger.ts";
import type { RpcMetrics } from "../telemetry/metrics.ts";
import { recentSpans } from "../telemetry/tracing.ts";
import { readLogLines } from "./log-lines.ts";
import { createMethodStatsSampler, quantileFromBuckets } from "./method-stats.ts";
import { createServiceNamer, isPlatformService, loadTopology } from "./topology.ts";
import type { Topology } from "./topology.ts";
import { observedEdges, spansOfTrace, summarizeTraces } from "./traces.ts";
import type { SpanSource } from "./traces.ts";

export interface OpsServiceOptions {
  /** The server whose health, metrics and services are reported (a ShopServer fits). */
  server: { readonly health: HealthRegistry; readonly metrics: RpcMetrics; services(): DescService[] };
  /** Default: the repository's topology.json. */
  topology?: Topology;
  /**
   * The system map's call paths from the edge, with their depth, retry
   * amplification and deadline budgets (the contracts check's: runner/shop.ts
   * passes contracts/system-map.ts). Asked for at the first GetSystemMap and
   * kept; a failure answers that call with its error and is asked again at
   * the next. Default: no paths.
   */
  callPaths?: () => Promise<Pick<MessageInitShape<typeof GetSystemMapResponseSchema>, "callPaths" | "callPathLimits">>;
  /** How this process is named in answers. Default MESH_INSTANCE (the mesh runner names each instance: "orders-1"), else "<hostname>/<pid>". */
  instance?: string;
  /** Default: this process's recentSpans. */
  spans?: SpanSource;
  /** Default: this process's recentLogLines. */
  logs?: LogRing;
  now?: () => number;
}

const DEFAULT_WINDOW_SECONDS = 60;
const DEFAULT_TRACES = 20;
const DEFAULT_LOG_LINES = 200;

export function createOpsService(options: OpsServiceOptions): ServiceImpl<typeof OpsService> {
  const { server } = options;
  const topology = options.topology ?? loadTopology();
  const instance = options.instance ?? (process.env.MESH_INSTANCE || `${hostname()}/${process.pid}`);
  const spans = options.spans ?? recentSpans;
  const logs = options.logs ?? recentLogLines;
  const startedAt = new Date(options.now?.() ?? Date.now());
  const nameOf = createServiceNamer(topology);
  const sampler = createMethodStatsSampler({ registry: server.metrics.registry, now: options.now });
  let callPaths: ReturnType<NonNullable<OpsServiceOptions["callPaths"]>> | undefined;
  const pathsOnce = () => {
    if (!options.callPaths) return Promise.resolve({});
    callPaths ??= options.callPaths().catch((err: unknown) => {
      callPaths = undefined;
      throw new ConnectError(`the call paths of the contracts could not be computed: ${err instanceof Error ? err.message : String(err)}`, Code.Internal);
    });
    return callPaths;
  };

  function stateOf(grpcService: string): ServingState {
    const status = server.health.get(grpcService);
    if (status === ServingStatus.SERVING) return ServingState.SERVING;
    if (status === undefined || status === ServingStatus.SERVICE_UNKNOWN) return ServingState.UNKNOWN;
    return ServingState.NOT_SERVING;
  }

  function deadlineOf(grpcService: string, method: string): number {
    const service = server.services().find((s) => s.typeName === grpcService);
    const m = service?.methods.find((x) => x.name === method);
    return m ? (contractOf(m).deadlineMs ?? 0) : 0;
  }

  return {
    async getSystemMap() {
      const paths = await pathsOnce();
      const healthNames = server.health.names().filter((n) => n !== "");
      const served: string[] = [];
      const services: Array<MessageInitShape<typeof ServiceNodeSchema>> = Object.entries(topology.services).map(([name, s]) => {
        const grpcServices = healthNames
          .filter((n) => n.startsWith(`${s.package}.`))
          .map((n) => ({ instance, grpcService: n, state: stateOf(n) }));
        if (grpcServices.length > 0) served.push(name);
        const state =
          grpcServices.length === 0
            ? ServingState.UNKNOWN
            : grpcServices.every((g) => g.state === ServingState.SERVING)
              ? ServingState.SERVING
              : ServingState.NOT_SERVING;
        return { name, protoPackage: s.package, state, grpcServices, replicas: s.replicas, exposed: topology.edge?.exposes.includes(name) ?? false };
      });
      const seen = observedEdges(spans.all(), nameOf);
      const edges: Array<MessageInitShape<typeof ServiceEdgeSchema>> = [];
      for (const [source, s] of Object.entries(topology.services)) {
        for (const target of s.calls) {
          const o = seen.find((e) => e.kind === EdgeKind.CALL && e.source === source && e.target === target);
          edges.push({ source, target, kind: EdgeKind.CALL, recentCount: o?.count ?? 0, recentErrors: o?.errors ?? 0 });
        }
      }
      // Calls the topology does not declare still show: they are a finding.
      for (const e of seen) {
        if (e.target === "platform" || e.source === "platform") continue;
        if (e.kind === EdgeKind.CALL && topology.services[e.source]?.calls.includes(e.target)) continue;
        edges.push({ source: e.source, target: e.target, kind: e.kind, recentCount: e.count, recentErrors: e.errors });
      }
      return { services, edges, instances: [{ id: instance, startedAt: timestampFromDate(startedAt), services: served }], ...paths };
    },

    async getMethodStats(req) {
      const window = await sampler.window(req.windowSeconds > 0 ? req.windowSeconds : DEFAULT_WINDOW_SECONDS);
      const methods = window.methods
        .filter((m) => req.includePlatform || !isPlatformService(m.grpcService))
        .sort((a, b) => nameOf(a.grpcService).localeCompare(nameOf(b.grpcService)) || a.grpcService.localeCompare(b.grpcService) || a.method.localeCompare(b.method))
        .map((m) => ({
          service: nameOf(m.grpcService),
          grpcService: m.grpcService,
          method: m.method,
          requests: m.requests,
          errors: m.errors,
          requestsPerSecond: m.requests / window.seconds,
          errorRatio: m.requests > 0 ? m.errors / m.requests : 0,
          p99Ms: quantileFromBuckets(0.99, window.bounds, m.buckets) * 1000,
          inFlight: m.inFlight,
          deadlineMs: deadlineOf(m.grpcService, m.method),
          errorsByCode: m.errorsByCode,
          latencyBuckets: window.bounds.map((upperBoundSeconds, i) => ({ upperBoundSeconds, count: m.buckets[i] ?? 0 })),
        }));
      return { methods, windowSeconds: window.seconds, sampledAt: timestampFromDate(window.sampledAt) };
    },

    listRecentTraces(req) {
      const traces = summarizeTraces(
        spans.all(),
        { limit: req.pageSize > 0 ? req.pageSize : DEFAULT_TRACES, service: req.service || undefined, errorsOnly: req.errorsOnly, includePlatform: req.includePlatform },
        nameOf,
      );
      return { traces };
    },

    getTrace(req) {
      const traceId = req.traceId.toLowerCase();
      const found = spansOfTrace(spans.all(), traceId, instance, nameOf);
      if (found.length === 0) {
        throw new ConnectError(`no span of trace ${traceId} is held here: unknown, or older than the most recent spans kept`, Code.NotFound);
      }
      return { traceId, spans: found };
    },

    listLogLines(req) {
      const lines = readLogLines(logs, { traceId: req.traceId.toLowerCase() || undefined, limit: req.pageSize > 0 ? req.pageSize : DEFAULT_LOG_LINES, instance });
      return { lines };
    },
  };
}
