// Envoy clusters: an upstream service as a caller sees it (every replica,
// health-checked, load-balanced, with outlier detection and finite circuit
// breakers, over mTLS when given a transport socket: mtls.ts), and an
// instance's own app as its sidecar sees it (cleartext, on loopback). Each exists
// once per budget its routes use (policy.ts): unary calls, streams of
// signed-in callers and public streams never share a circuit breaker.
import {
  APP_LIMITS,
  APP_PUBLIC_STREAM_LIMITS,
  APP_STREAM_LIMITS,
  BUDGETS,
  CALLER_LIMITS,
  duration,
  HEALTH_CHECK,
  OUTLIER,
  PUBLIC_STREAM_LIMITS,
  STREAM_LIMITS,
  UPSTREAM,
} from "./policy.ts";
import type { Budget, CallerLimits, StreamLimits } from "./policy.ts";
import type { YamlValue } from "./yaml.ts";

/** The cluster of one upstream service for one budget: "orders", "orders-streams", "orders-public-streams". */
export function upstreamClusterName(service: string, budget: Budget): string {
  return budget === "calls" ? service : `${service}-${budget}`;
}

/** The instance's own app for one budget: "local_app", "local_app_streams", "local_app_public_streams". */
export function localAppClusterName(budget: Budget): string {
  return budget === "calls" ? "local_app" : `local_app_${budget.replaceAll("-", "_")}`;
}

/** The budgets routes use, in a fixed order, so clusters come out in the same order every time. */
export function budgetsUsed(used: Iterable<Budget>): Budget[] {
  const set = new Set(used);
  return BUDGETS.filter((b) => set.has(b));
}

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

export interface UpstreamClusterOptions {
  /** The upstream service's cluster name for unary calls ("orders"); a stream budget's cluster adds its suffix. */
  name: string;
  /** Default "calls". */
  budget?: Budget;
  endpoints: readonly Endpoint[];
  /**
   * STATIC for loopback addresses; STRICT_DNS for a Kubernetes headless
   * Service, whose name resolves to every ready pod: one host per pod, so
   * calls are balanced per request, not pinned to one pod's connection.
   */
  discovery: "STATIC" | "STRICT_DNS";
  /** The name Health/Check is asked about; "" is the whole server. */
  healthService: string;
  /** Circuit-breaker limits of the calls budget. Default CALLER_LIMITS; the fault drills use smaller ones. */
  limits?: CallerLimits;
  /** Circuit-breaker limits of a stream budget. Default STREAM_LIMITS or PUBLIC_STREAM_LIMITS. */
  streamLimits?: StreamLimits;
  /** The transport socket to the endpoints (mtls.ts upstreamTls: this proxy's certificate, the callee's SAN checked); health checks use it too. Default cleartext. */
  transportSocket?: YamlValue;
}

/** Every upstream speaks gRPC (and Connect, gRPC-Web) over HTTP/2: in TLS (ALPN h2) to another service's inbound listener, cleartext to the app beside the proxy. */
function http2Options(): YamlValue {
  return {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
      explicit_http_config: {
        http2_protocol_options: {
          connection_keepalive: { interval: duration(UPSTREAM.keepaliveIntervalMs), timeout: duration(UPSTREAM.keepaliveTimeoutMs) },
        },
      },
    },
  };
}

function loadAssignment(name: string, endpoints: readonly Endpoint[]): YamlValue {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } } })),
      },
    ],
  };
}

/**
 * Circuit breakers of one budget. A caller's calls budget has retries and a
 * retry budget; a stream budget (a proxy never retries a stream, routes.ts)
 * and every budget in front of the instance's own app (the inbound side never
 * retries) have none.
 */
function thresholds(limits: StreamLimits, retries?: CallerLimits): YamlValue {
  const threshold: Record<string, YamlValue> = {
    priority: "DEFAULT",
    max_connections: limits.maxConnections,
    max_pending_requests: limits.maxPendingRequests,
    max_requests: limits.maxRequests,
    max_retries: retries ? retries.maxRetries : 0,
  };
  if (retries) {
    threshold.retry_budget = {
      budget_percent: { value: retries.retryBudgetPercent },
      min_retry_concurrency: retries.minRetryConcurrency,
    };
  }
  threshold.track_remaining = true;
  return { thresholds: [threshold] };
}

export function upstreamCluster(options: UpstreamClusterOptions): YamlValue {
  const budget = options.budget ?? "calls";
  const name = upstreamClusterName(options.name, budget);
  const circuitBreakers =
    budget === "calls"
      ? thresholds(options.limits ?? CALLER_LIMITS, options.limits ?? CALLER_LIMITS)
      : thresholds(options.streamLimits ?? (budget === "streams" ? STREAM_LIMITS : PUBLIC_STREAM_LIMITS));
  return {
    name,
    type: options.discovery,
    // Cluster DNS is asked again every 5 s (Envoy's default) for the pods behind the name.
    dns_lookup_family: options.discovery === "STRICT_DNS" ? "V4_PREFERRED" : undefined,
    connect_timeout: duration(UPSTREAM.connectTimeoutMs),
    // The replica with the fewest calls in flight of two picked at random:
    // a slow replica gets less traffic without any configuration of weights.
    lb_policy: "LEAST_REQUEST",
    typed_extension_protocol_options: http2Options(),
    transport_socket: options.transportSocket,
    load_assignment: loadAssignment(name, options.endpoints),
    health_checks: [
      {
        timeout: duration(HEALTH_CHECK.timeoutMs),
        interval: duration(HEALTH_CHECK.intervalMs),
        no_traffic_interval: duration(HEALTH_CHECK.noTrafficIntervalMs),
        unhealthy_interval: duration(HEALTH_CHECK.unhealthyIntervalMs),
        interval_jitter: duration(HEALTH_CHECK.jitterMs),
        unhealthy_threshold: HEALTH_CHECK.unhealthyThreshold,
        healthy_threshold: HEALTH_CHECK.healthyThreshold,
        // A NOT_SERVING answer (a draining instance) takes the host out at once.
        grpc_health_check: { service_name: options.healthService },
      },
    ],
    // Unhealthy hosts stay out of rotation even when the health checker and
    // the outlier detector disagree about them.
    common_lb_config: { healthy_panic_threshold: { value: 0 } },
    outlier_detection: {
      consecutive_5xx: OUTLIER.consecutive5xx,
      enforcing_consecutive_5xx: 100,
      consecutive_gateway_failure: OUTLIER.consecutiveGatewayFailure,
      enforcing_consecutive_gateway_failure: 100,
      // Connection failures (refused, reset, timed out) are counted apart from
      // answers the upstream gave: a dead replica is ejected after three.
      split_external_local_origin_errors: true,
      consecutive_local_origin_failure: OUTLIER.consecutiveLocalOriginFailure,
      enforcing_consecutive_local_origin_failure: 100,
      interval: duration(OUTLIER.intervalMs),
      base_ejection_time: duration(OUTLIER.baseEjectionTimeMs),
      // Envoy's default lets the next passing health check (one a second here)
      // bring an ejected replica back: one that answers SERVING but fails its
      // calls would return every second, not after the ejection time.
      successful_active_health_check_uneject_host: false,
      max_ejection_percent: OUTLIER.maxEjectionPercent,
    },
    circuit_breakers: circuitBreakers,
  };
}

const APP_BUDGET_LIMITS: Record<Budget, StreamLimits> = {
  calls: APP_LIMITS,
  streams: APP_STREAM_LIMITS,
  "public-streams": APP_PUBLIC_STREAM_LIMITS,
};

/** The instance's own app on loopback, as its sidecar's inbound listener reaches it, for one budget. */
export function localAppCluster(port: number, budget: Budget = "calls"): YamlValue {
  const name = localAppClusterName(budget);
  return {
    name,
    type: "STATIC",
    connect_timeout: duration(UPSTREAM.connectTimeoutMs),
    typed_extension_protocol_options: http2Options(),
    load_assignment: loadAssignment(name, [{ address: "127.0.0.1", port }]),
    circuit_breakers: thresholds(APP_BUDGET_LIMITS[budget]),
  };
}

/** An OTLP/HTTP collector for Envoy's own spans, when tracing export is on. */
export function collectorCluster(endpoint: Endpoint, discovery: "STATIC" | "STRICT_DNS"): YamlValue {
  return {
    name: "otlp_collector",
    type: discovery,
    connect_timeout: duration(UPSTREAM.connectTimeoutMs),
    load_assignment: loadAssignment("otlp_collector", [endpoint]),
  };
}
