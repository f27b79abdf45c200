// Prometheus metrics through prom-client: per-method counters, a latency
// histogram and an in-flight gauge, plus the default process and event-loop
// metrics. One registry per server so tests can run several in a process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface RpcMetrics {
  readonly registry: Registry;
  /** Call at the start of an RPC; call the returned function with its code when it ends. */
  start(service: string, method: string): (code: string) => void;
  /** The same for an outgoing call made through a platform client. */
  startClient(service: string, method: string): (code: string) => void;
  /** A request or connection refused by the transport before any handler ran. */
  refused(reason: RefusalReason): void;
}

/** Why the transport refused something: the label of rpc_server_refused_total. */
export type RefusalReason = "framing" | "decoding" | "size" | "compression" | "content_type" | "limit" | "unknown_method" | "protocol";

export function createRpcMetrics(options: { defaultMetrics?: boolean } = {}): RpcMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const labelNames = ["service", "method"] as const;
  const requests = new Counter({
    name: "rpc_server_requests_total",
    help: "RPCs received, by method.",
    labelNames,
    registers: [registry],
  });
  const handled = new Counter({
    name: "rpc_server_handled_total",
    help: "RPCs completed, by method and gRPC code.",
    labelNames: [...labelNames, "code"],
    registers: [registry],
  });
  const errors = new Counter({
    name: "rpc_server_errors_total",
    help: "RPCs that ended with a code other than OK, by method and gRPC code.",
    labelNames: [...labelNames, "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "rpc_server_duration_seconds",
    help: "Time from the start of an RPC to its status, by method.",
    labelNames,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: "rpc_server_in_flight",
    help: "RPCs being handled now, by method.",
    labelNames,
    registers: [registry],
  });

  // Label lookups cost more than the increments; keep the children per method.
  type CounterChild = ReturnType<typeof handled.labels>;
  const perMethod = new Map<
    string,
    {
      requests: ReturnType<typeof requests.labels>;
      duration: ReturnType<typeof duration.labels>;
      inFlight: ReturnType<typeof inFlight.labels>;
      byCode: Map<string, { handled: CounterChild; errors: CounterChild | undefined }>;
    }
  >();

  const clientHandled = new Counter({
    name: "rpc_client_handled_total",
    help: "Outgoing calls completed, by method and gRPC code.",
    labelNames: [...labelNames, "code"],
    registers: [registry],
  });
  const clientDuration = new Histogram({
    name: "rpc_client_duration_seconds",
    help: "Time from the start of an outgoing call to its status, by method.",
    labelNames,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  const refusedTotal = new Counter({
    name: "rpc_server_refused_total",
    help: "Requests and connections the transport refused before any handler ran, by reason (framing, decoding, size, compression, content_type, limit, unknown_method, protocol).",
    labelNames: ["reason"],
    registers: [registry],
  });
  const refusedByReason = new Map<RefusalReason, ReturnType<typeof refusedTotal.labels>>();

  return {
    registry,
    refused(reason) {
      let child = refusedByReason.get(reason);
      if (!child) refusedByReason.set(reason, (child = refusedTotal.labels(reason)));
      child.inc();
    },
    startClient(service, method) {
      const started = performance.now();
      return (code) => {
        clientDuration.labels(service, method).observe((performance.now() - started) / 1000);
        clientHandled.labels(service, method, code).inc();
      };
    },
    start(service, method) {
      const key = `${service}/${method}`;
      let m = perMethod.get(key);
      if (!m) {
        m = {
          requests: requests.labels(service, method),
          duration: duration.labels(service, method),
          inFlight: inFlight.labels(service, method),
          byCode: new Map(),
        };
        perMethod.set(key, m);
      }
      const started = performance.now();
      m.requests.inc();
      m.inFlight.inc();
      const entry = m;
      return (code) => {
        entry.inFlight.dec();
        entry.duration.observe((performance.now() - started) / 1000);
        let byCode = entry.byCode.get(code);
        if (!byCode) {
          byCode = { handled: handled.labels(service, method, code), errors: code === "OK" ? undefined : errors.labels(service, method, code) };
          entry.byCode.set(code, byCode);
        }
        byCode.handled.inc();
        byCode.errors?.inc();
      };
    },
  };
}
