// Per-method request rate, error rate and p99 latency over a recent window,
// computed from the server's Prometheus counters and histogram the way a
// Prometheus query would (increase over the window, histogram_quantile), but
// from samples this process takes of its own registry.
//
// Samples are taken when someone asks, not on a timer: an idle process pays
// nothing, and the first sample is the zero every counter starts from.
import type { Registry } from "prom-client";

export interface MethodKey {
  /** Fully qualified gRPC service: "shop.orders.v1.OrderService". */
  readonly grpcService: string;
  readonly method: string;
}

export interface MethodWindow extends MethodKey {
  readonly requests: number;
  readonly errors: number;
  readonly errorsByCode: Record<string, number>;
  /** Cumulative counts per bucket in the window, aligned with bounds (the last is +Inf). */
  readonly buckets: number[];
  readonly inFlight: number;
}

export interface StatsWindow {
  /** Upper bounds in seconds, the last one Infinity. */
  readonly bounds: number[];
  /** The time actually covered, in seconds. */
  readonly seconds: number;
  readonly sampledAt: Date;
  readonly methods: MethodWindow[];
}

export interface MethodStatsSampler {
  /** Counts over the last windowSeconds (or since the first sample when that is more recent). */
  window(windowSeconds: number): Promise<StatsWindow>;
}

export interface MethodStatsSamplerOptions {
  registry: Registry;
  /** Longest window kept, in seconds. Default 3600. */
  horizonSeconds?: number;
  /** Samples closer together than this replace each other. Default 5000. */
  minSpacingMs?: number;
  now?: () => number;
}

interface MethodSample {
  key: MethodKey;
  handled: Map<string, number>;
  buckets: number[];
  inFlight: number;
}

interface Sample {
  at: number;
  methods: Map<string, MethodSample>;
}

export function createMethodStatsSampler(options: MethodStatsSamplerOptions): MethodStatsSampler {
  const now = options.now ?? Date.now;
  const horizonMs = (options.horizonSeconds ?? 3600) * 1000;
  const minSpacingMs = options.minSpacingMs ?? 5000;
  // Counters start at zero when the registry is made, which is about now.
  const history: Sample[] = [{ at: now(), methods: new Map() }];
  let bounds: number[] = [];

  async function sample(): Promise<Sample> {
    const at = now();
    const methods = new Map<string, MethodSample>();
    const entry = (service: string, method: string): MethodSample => {
      const id = `${service}/${method}`;
      let m = methods.get(id);
      if (!m) {
        m = { key: { grpcService: service, method }, handled: new Map(), buckets: [], inFlight: 0 };
        methods.set(id, m);
      }
      return m;
    };
    const handled = await options.registry.getSingleMetric("rpc_server_handled_total")?.get();
    for (const v of handled?.values ?? []) {
      const { service, method, code } = v.labels as Record<string, string>;
      entry(service, method).handled.set(code, v.value);
    }
    const inFlight = await options.registry.getSingleMetric("rpc_server_in_flight")?.get();
    for (const v of inFlight?.values ?? []) {
      const { service, method } = v.labels as Record<string, string>;
      entry(service, method).inFlight = v.value;
    }
    const duration = await options.registry.getSingleMetric("rpc_server_duration_seconds")?.get();
    const seenBounds: number[] = [];
    for (const v of duration?.values ?? []) {
      if (!("metricName" in v) || !String(v.metricName).endsWith("_bucket")) continue;
      const { service, method, le } = v.labels as Record<string, string | number>;
      const bound = le === "+Inf" ? Infinity : Number(le);
      const m = entry(String(service), String(method));
      let i = seenBounds.indexOf(bound);
      if (i < 0) i = seenBounds.push(bound) - 1;
      m.buckets[i] = v.value;
    }
    if (seenBounds.length > 0) bounds = seenBounds;
    return { at, methods };
  }

  function remember(s: Sample): void {
    const last = history[history.length - 1];
    // Keep the very first (zero) sample until the horizon passes it, so a
    // window reaching back to the start has its baseline.
    if (history.length > 1 && s.at - last.at < minSpacingMs) history[history.length - 1] = s;
    else history.push(s);
    while (history.length > 2 && s.at - history[1].at >= horizonMs) history.shift();
  }

  return {
    async window(windowSeconds) {
      const current = await sample();
      const from = current.at - windowSeconds * 1000;
      // The newest sample at or before the window's start; else the oldest kept.
      let base = history[0];
      for (const h of history) {
        if (h.at <= from) base = h;
        else break;
      }
      remember(current);
      const out: MethodWindow[] = [];
      for (const [id, m] of current.methods) {
        const before = base.methods.get(id);
        const errorsByCode: Record<string, number> = {};
        let requests = 0;
        let errors = 0;
        for (const [code, value] of m.handled) {
          const delta = value - (before?.handled.get(code) ?? 0);
          requests += delta;
          if (code !== "OK" && delta > 0) {
            errors += delta;
            errorsByCode[code] = delta;
          }
        }
        const buckets = bounds.map((_, i) => (m.buckets[i] ?? 0) - (before?.buckets[i] ?? 0));
        out.push({ ...m.key, requests, errors, errorsByCode, buckets, inFlight: m.inFlight });
      }
      return { bounds, seconds: Math.max(0.001, (current.at - base.at) / 1000), sampledAt: new Date(current.at), methods: out };
    },
  };
}

/**
 * The q-quantile of a window's cumulative bucket counts, interpolated
 * linearly inside its bucket, as Prometheus' histogram_quantile does. A rank
 * that falls in the +Inf bucket answers the highest finite bound. 0 when the
 * buckets are empty.
 */
export function quantileFromBuckets(q: number, bounds: readonly number[], cumulative: readonly number[]): number {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0) return 0;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if ((cumulative[i] ?? 0) < rank) continue;
    if (bounds[i] === Infinity) return bounds[i - 1] ?? 0;
    const lower = i === 0 ? 0 : bounds[i - 1];
    const below = i === 0 ? 0 : (cumulative[i - 1] ?? 0);
    const inBucket = (cumulative[i] ?? 0) - below;
    return inBucket <= 0 ? bounds[i] : lower + (bounds[i] - lower) * ((rank - below) / inBucket);
  }
  return bounds[bounds.length - 2] ?? 0;
}
