// The pieces every Envoy of the mesh shares: a listener with an HTTP
// connection manager (behind the transport socket it is given: mTLS on the
// sidecars' inbound listeners, mtls.ts), JSON access logs that carry the trace id, the admin
// endpoint on loopback, and the bootstrap around them.
import type { DescService } from "@bufbuild/protobuf";
import { duration, MAX_DOWNSTREAM_CONNECTIONS } from "./policy.ts";
import type { Route } from "./routes.ts";
import type { YamlValue } from "./yaml.ts";

/** Where traces go, when Envoy's own spans are exported (OTLP over HTTP). */
export interface TracingExport {
  /** The collector's host and port; Envoy posts to /v1/traces. */
  readonly host: string;
  readonly port: number;
}

export interface ListenerOptions {
  /** "inbound", "outbound", "edge": the listener's name and its stats prefix. */
  name: string;
  address: string;
  port: number;
  /** Which proxy this is, in every access log line: "catalog-1", "edge". */
  proxy: string;
  routes: readonly Route[];
  /** Methods whose gRPC stats are kept one by one (cluster.<c>.grpc.<service>.<method>.*). */
  statsFor: readonly DescService[];
  /** The edge: the client's address is the remote peer, x-envoy-* request headers from outside are dropped. */
  edge?: boolean;
  /** A per-route filter configuration for the whole virtual host (the edge's CORS policy). */
  virtualHostFilters?: Record<string, YamlValue>;
  /** Response headers no client should see (the edge hides what the sidecars add). */
  responseHeadersToRemove?: readonly string[];
  /** Filters before the gRPC stats and the router (the edge's CORS filter). */
  filters?: readonly YamlValue[];
  /** HTTP/2 limits for the listener's clients (the edge's: policy.ts EDGE_HTTP2). Default Envoy's. */
  http2?: { readonly maxConcurrentStreams: number; readonly initialStreamWindowSize: number; readonly initialConnectionWindowSize: number };
  tracing?: TracingExport;
  /** The listener's transport socket (an inbound listener's: mtls.ts downstreamTls). Default cleartext. */
  transportSocket?: YamlValue;
  /**
   * Behind mTLS: the verified caller's URI SAN, and nothing a client sent, in
   * x-forwarded-client-cert (SANITIZE_SET). Without it Envoy's default
   * (SANITIZE) drops the header, so no listener passes a forged one on.
   */
  forwardClientCert?: boolean;
  /** The HTTP connection manager's local_reply_config (an inbound listener's: the RBAC refusal, mtls.ts). */
  localReplies?: YamlValue;
}

const TRACE_METADATA = "shop.trace";

/**
 * One JSON object per request on stdout. trace_id is read from the W3C
 * traceparent the request carried (Envoy only reads it: the services make the
 * spans), so a line here and the services' log lines of the same call share it.
 */
function accessLog(options: ListenerOptions): YamlValue {
  return [
    {
      name: "envoy.access_loggers.stdout",
      // Health checks between proxies (one per second per checker) would drown the calls.
      filter: { header_filter: { header: { name: "user-agent", string_match: { exact: "Envoy/HC" }, invert_match: true } } },
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        log_format: {
          omit_empty_values: true,
          json_format: {
            time: "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
            level: "info",
            msg: "access",
            proxy: options.proxy,
            listener: options.name,
            trace_id: options.tracing ? "%TRACE_ID%" : `%DYNAMIC_METADATA(${TRACE_METADATA}:trace_id)%`,
            traceparent: "%REQ(TRACEPARENT)%",
            request_id: "%REQ(X-REQUEST-ID)%",
            method: "%REQ(:METHOD)%",
            path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            protocol: "%PROTOCOL%",
            content_type: "%REQ(CONTENT-TYPE)%",
            status: "%RESPONSE_CODE%",
            grpc_status: "%GRPC_STATUS(SNAKE_STRING)%",
            flags: "%RESPONSE_FLAGS%",
            details: "%RESPONSE_CODE_DETAILS%",
            duration_ms: "%DURATION%",
            attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
            upstream_cluster: "%UPSTREAM_CLUSTER%",
            upstream_host: "%UPSTREAM_HOST%",
            upstream_failure: "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
            downstream: "%DOWNSTREAM_REMOTE_ADDRESS%",
            user_agent: "%REQ(USER-AGENT)%",
            bytes_in: "%BYTES_RECEIVED%",
            bytes_out: "%BYTES_SENT%",
          },
        },
      },
    },
  ];
}

/** Copies the trace id out of traceparent for the access log. */
const traceIdFilter: YamlValue = {
  name: "envoy.filters.http.header_to_metadata",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
    request_rules: [
      {
        header: "traceparent",
        on_header_present: {
          metadata_namespace: TRACE_METADATA,
          key: "trace_id",
          regex_value_rewrite: { pattern: { regex: "^[0-9a-f]{2}-([0-9a-f]{32})-.*$" }, substitution: "\\1" },
        },
        remove: false,
      },
    ],
  },
};

function grpcStatsFilter(services: readonly DescService[]): YamlValue {
  return {
    name: "envoy.filters.http.grpc_stats",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
      enable_upstream_stats: true,
      // Only known methods get stats of their own: a client cannot grow the
      // stats table by calling made-up paths.
      individual_method_stats_allowlist: {
        services: services.map((s) => ({ name: s.typeName, method_names: s.methods.map((m) => m.name) })),
      },
    },
  };
}

const routerFilter = (edge: boolean): YamlValue => ({
  name: "envoy.filters.http.router",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    // Outside callers need not learn Envoy's internal headers.
    suppress_envoy_headers: edge ? true : undefined,
  },
});

function tracingConfig(proxy: string, tracing: TracingExport): YamlValue {
  return {
    provider: {
      name: "envoy.tracers.opentelemetry",
      typed_config: {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        service_name: `envoy-${proxy}`,
        http_service: {
          http_uri: { uri: `http://${tracing.host}:${tracing.port}/v1/traces`, cluster: "otlp_collector", timeout: "1s" },
        },
      },
    },
  };
}

export function httpListener(options: ListenerOptions): YamlValue {
  const hcm: Record<string, YamlValue | undefined> = {
    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    stat_prefix: options.name,
    // HTTP/1.1 (browsers, curl) and HTTP/2 (gRPC) on one port; behind TLS, ALPN decides.
    codec_type: "AUTO",
    use_remote_address: options.edge ? true : undefined,
    forward_client_cert_details: options.forwardClientCert ? "SANITIZE_SET" : undefined,
    set_current_client_cert_details: options.forwardClientCert ? { uri: true } : undefined,
    normalize_path: options.edge ? true : undefined,
    merge_slashes: options.edge ? true : undefined,
    request_headers_timeout: options.edge ? duration(10_000) : undefined,
    common_http_protocol_options: options.edge ? { headers_with_underscores_action: "REJECT_REQUEST" } : undefined,
    http2_protocol_options: options.http2
      ? {
          max_concurrent_streams: options.http2.maxConcurrentStreams,
          initial_stream_window_size: options.http2.initialStreamWindowSize,
          initial_connection_window_size: options.http2.initialConnectionWindowSize,
        }
      : undefined,
    tracing: options.tracing ? tracingConfig(options.proxy, options.tracing) : undefined,
    local_reply_config: options.localReplies,
    access_log: accessLog(options),
    route_config: {
      name: options.name,
      response_headers_to_remove: options.responseHeadersToRemove,
      virtual_hosts: [
        {
          name: options.name,
          domains: ["*"],
          routes: options.routes,
          typed_per_filter_config: options.virtualHostFilters,
        },
      ],
    },
    http_filters: [traceIdFilter, ...(options.filters ?? []), grpcStatsFilter(options.statsFor), routerFilter(options.edge ?? false)],
  };
  return {
    name: options.name,
    address: { socket_address: { address: options.address, port_value: options.port } },
    filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: hcm }], transport_socket: options.transportSocket }],
  };
}

export interface BootstrapOptions {
  /** Envoy's node id ("catalog-1", "edge") and cluster ("catalog", "edge"). */
  node: string;
  cluster: string;
  adminPort: number;
  listeners: readonly YamlValue[];
  clusters: readonly YamlValue[];
}

export function bootstrap(options: BootstrapOptions): YamlValue {
  return {
    node: { id: options.node, cluster: options.cluster },
    // Stats, clusters, ready and quitquitquit: on loopback only, never routed.
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: options.adminPort } } },
    static_resources: { listeners: options.listeners, clusters: options.clusters },
    overload_manager: {
      resource_monitors: [
        {
          name: "envoy.resource_monitors.global_downstream_max_connections",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            max_active_downstream_connections: MAX_DOWNSTREAM_CONNECTIONS,
          },
        },
      ],
    },
  };
}
