// Envoy clusters: an upstream service as a caller sees it (every replica,
// health-checked, load-balanced, with outlier detection and finite circuit
// breakers), and an instance's own app as its sidecar sees it.
import { APP_LIMITS, CALLER_LIMITS, duration, HEALTH_CHECK, OUTLIER, UPSTREAM } from "./policy.ts";
import type { CallerLimits } from "./policy.ts";
import type { YamlValue } from "./yaml.ts";

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

export interface UpstreamClusterOptions {
  name: string;
  endpoints: readonly Endpoint[];
  /**
   * STATIC for loopback addresses; STRICT_DNS for a Kubernetes headless
   * Service, whose name resolves to every ready pod: one host per pod, so
   * calls are balanced per request, not pinned to one pod's connection.
   */
  discovery: "STATIC" | "STRICT_DNS";
  /** The name Health/Check is asked about; "" is the whole server. */
  healthService: string;
  /** Circuit-breaker limits. Default CALLER_LIMITS; the fault drills use smaller ones. */
  limits?: CallerLimits;
}

/** Every upstream speaks gRPC (and Connect, gRPC-Web) over cleartext HTTP/2. */
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

export function upstreamCluster(options: UpstreamClusterOptions): YamlValue {
  const limits = options.limits ?? CALLER_LIMITS;
  return {
    name: options.name,
    type: options.discovery,
    // Cluster DNS is asked again every 5 s (Envoy's default) for the pods behind the name.
    dns_lookup_family: options.discovery === "STRICT_DNS" ? "V4_PREFERRED" : undefined,
    connect_timeout: duration(UPSTREAM.connectTimeoutMs),
    // The replica with the fewest calls in flight of two picked at random:
    // a slow replica gets less traffic without any configuration of weights.
    lb_policy: "LEAST_REQUEST",
    typed_extension_protocol_options: http2Options(),
    load_assignment: loadAssignment(options.name, options.endpoints),
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
    circuit_breakers: {
      thresholds: [
        {
          priority: "DEFAULT",
          max_connections: limits.maxConnections,
          max_pending_requests: limits.maxPendingRequests,
          max_requests: limits.maxRequests,
          max_retries: limits.maxRetries,
          retry_budget: {
            budget_percent: { value: limits.retryBudgetPercent },
            min_retry_concurrency: limits.minRetryConcurrency,
          },
          track_remaining: true,
        },
      ],
    },
  };
}

/** The instance's own app on loopback, as its sidecar's inbound listener reaches it. */
export function localAppCluster(port: number): YamlValue {
  return {
    name: "local_app",
    type: "STATIC",
    connect_timeout: duration(UPSTREAM.connectTimeoutMs),
    typed_extension_protocol_options: http2Options(),
    load_assignment: loadAssignment("local_app", [{ address: "127.0.0.1", port }]),
    circuit_breakers: {
      thresholds: [
        {
          priority: "DEFAULT",
          max_connections: APP_LIMITS.maxConnections,
          max_pending_requests: APP_LIMITS.maxPendingRequests,
          max_requests: APP_LIMITS.maxRequests,
          // The inbound side never retries.
          max_retries: 0,
          track_remaining: true,
        },
      ],
    },
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
