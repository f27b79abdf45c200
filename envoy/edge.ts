// The edge: the one address for everything outside the mesh.
//
// - gRPC (grpcurl, other backends), and the browser protocols: Connect
//   (POST, and GET for read-only methods, JSON or binary, HTTP/1.1 or h2) and
//   gRPC-Web. All are routed by path to the service's replicas as they are:
//   the services answer Connect and gRPC-Web themselves on the same port as
//   gRPC, so Envoy's grpc_web filter (which would translate to gRPC) is not
//   used, and one route per method serves every protocol.
// - CORS for the configured web origins.
// - Per-method timeouts and retries from the contracts, as the outbound
//   sidecars have them.
// - The edge backend, a small process beside the edge (`node runner/instance.ts
//   edge-backend`), answers what no single service can:
//     - reflection over every service's descriptors (a switch turns it off);
//     - mesh.v1.OpsService and mesh.v1.EventAdminService for the whole mesh,
//       asked without the x-shop-service header: it asks every instance and
//       merges (the operations console reads these);
//     - the browser app (web/dist): `/`, `/index.html`, `/assets/*` and any
//       other GET or HEAD that is not an RPC.
// - Health (Check, List) and the per-instance admin services of one service,
//   chosen with the x-shop-service header: one path cannot say which service
//   it means. Health/Watch is not offered here (UNIMPLEMENTED): it is a
//   stream anyone may open without signing in, nothing outside needs it
//   (Kubernetes probes and Envoy's health checks ask the sidecars, with
//   Check), and through the edge it would watch one replica picked at random.
// - Budgets (policy.ts): each service's unary calls, its streams of signed-in
//   callers (WatchOrder: <service>-streams) and its public streams
//   (<service>-public-streams; reflection: reflection-public-streams) are
//   clusters of their own with their own circuit breakers, so no number of
//   open streams fails a unary call; and one client connection holds at most
//   EDGE_HTTP2.maxConcurrentStreams streams.
// - mTLS to the services (mtls.ts, serviceTls below): every cluster to a
//   service's inbound listeners presents the edge's certificate
//   (spiffe://.../sa/edge) and accepts only that service's SPIFFE ID; the
//   edge backend beside it is reached in cleartext on loopback.
// - Rate limits (edge-limits.ts): every route that forwards has a token
//   bucket of its own, and Login and SignUp one per client address as well;
//   a call past them is answered RESOURCE_EXHAUSTED (gRPC) or HTTP 429
//   (Connect) at once, with retry-after and grpc-retry-pushback-ms.
// - The browser app's responses carry the security headers of
//   runner/security-headers.ts (CSP with frame-ancestors 'none',
//   Referrer-Policy, nosniff, X-Frame-Options), the same map `make run` uses.
// - An x-forwarded-client-cert header from outside never reaches a service
//   (forward_client_cert_details: SANITIZE): only the mesh's own proxies say
//   who a caller is.
// - TLS as an option (`tls`): the listener then speaks TLS only, offering h2
//   and http/1.1 by ALPN, with the certificate and key read from files
//   (`make mesh` with EDGE_TLS=1: a self-signed one under the mesh folder;
//   Kubernetes: EDGE_TLS_FILES, the chart's Secret mount).
import type { DescService } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import { budgetsUsed, upstreamCluster, upstreamClusterName } from "./clusters.ts";
import type { Endpoint } from "./clusters.ts";
import { healthService, instanceAdminServices, methodContracts, reflectionServices } from "./contracts.ts";
import { bootstrap, httpListener } from "./http.ts";
import { budgetOf, EDGE_HTTP2 } from "./policy.ts";
import type { Budget } from "./policy.ts";
import type { TracingExport } from "./http.ts";
import type { EdgePorts } from "./ports.ts";
import { grpcStatusRoute, headerIs, methodRoute } from "./routes.ts";
import { edgeRateLimitsOf, limitRoute, rateLimitedReplies, rateLimitFilter } from "./edge-limits.ts";
import type { TopologyRateLimits } from "./edge-limits.ts";
import { SECURITY_HEADERS } from "../runner/security-headers.ts";
import type { Route } from "./routes.ts";
import type { MethodContract } from "@shop/platform";
import type { YamlValue } from "./yaml.ts";
import { upstreamTls } from "./mtls.ts";
import type { MeshTls } from "./mtls.ts";

/** The header that names the service a health or admin call at the edge is for. */
export const SERVICE_HEADER = "x-shop-service";

/** Origins a browser app may call the edge from when none are configured: the Vite dev server. */
export const DEFAULT_WEB_ORIGINS: readonly string[] = ["http://localhost:5173", "http://127.0.0.1:5173"];

const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

/**
 * The edge backend's cluster. It keeps the name "reflection" while it also
 * answers reflection (what it was first for; dashboards and tests know it by
 * that name), and is "edge_backend" when reflection is switched off.
 */
export function edgeBackendCluster(reflection: boolean): string {
  return reflection ? "reflection" : "edge_backend";
}

/** How long the edge waits for a file of the browser app. */
const WEB_TIMEOUT = "30s";

/** A header match: the request does not carry the header at all. */
function headerAbsent(name: string): YamlValue {
  return { name, present_match: true, invert_match: true };
}

/** GET and HEAD only: the browser app's files; other methods on paths no route knows stay Envoy's 404. */
const readMethods: YamlValue = { name: ":method", string_match: { safe_regex: { regex: "^(GET|HEAD)$" } } };

export interface EdgeOptions {
  topology: Topology;
  descriptors: ReadonlyMap<string, readonly DescService[]>;
  ports: EdgePorts;
  /** Address of the public listener: 127.0.0.1 locally, 0.0.0.0 in a pod. */
  listenAddress: string;
  endpointsOf: (service: string) => Endpoint[];
  discovery: "STATIC" | "STRICT_DNS";
  /**
   * Route grpc.reflection.* to the edge backend (true), or answer UNIMPLEMENTED.
   * The backend is routed to either way: it serves the browser app and the
   * mesh-wide operations RPCs.
   */
  reflection: boolean;
  webOrigins: readonly string[];
  tracing?: TracingExport;
  extraClusters?: readonly YamlValue[];
  /** mTLS to the services' inbound listeners (mtls.ts): the edge's certificate, each service's SPIFFE ID checked. The edge backend beside it stays cleartext on loopback. */
  mtls?: MeshTls;
  /** Rate limits over topology.json's edge.rateLimits and the defaults (edge-limits.ts). */
  rateLimits?: TopologyRateLimits;
  /** Serve TLS (h2 and http/1.1 by ALPN) with this certificate; default plaintext (h2c and HTTP/1.1). */
  tls?: EdgeTls;
}

/** The edge's certificate and key, as files Envoy reads at start (PEM). */
export interface EdgeTls {
  readonly certificateChain: string;
  readonly privateKey: string;
}

/** Where the edge reads its certificate in Kubernetes (edge-tls.yaml): the chart mounts a kubernetes.io/tls Secret at /etc/shop/edge-tls. */
export const EDGE_TLS_FILES: EdgeTls = { certificateChain: "/etc/shop/edge-tls/tls.crt", privateKey: "/etc/shop/edge-tls/tls.key" };

function tlsTransportSocket(tls: EdgeTls): YamlValue {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
      common_tls_context: {
        tls_params: { tls_minimum_protocol_version: "TLSv1_2" },
        tls_certificates: [{ certificate_chain: { filename: tls.certificateChain }, private_key: { filename: tls.privateKey } }],
        // gRPC needs h2; browsers and curl may take either.
        alpn_protocols: ["h2", "http/1.1"],
      },
    },
  };
}

/** A header added to a response, replacing one the upstream sent under the same name. */
function responseHeader(key: string, value: string): YamlValue {
  if (value.includes("%")) throw new Error(`response header ${key}: Envoy would read "%" in ${value} as a format string`);
  return { header: { key, value }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" };
}

function corsPolicy(origins: readonly string[]): YamlValue {
  return {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
    allow_origin_string_match: origins.map((o) => ({ exact: o })),
    allow_methods: "GET, POST, OPTIONS",
    allow_headers: [
      "authorization",
      "content-type",
      "accept-encoding",
      "content-encoding",
      "connect-protocol-version",
      "connect-timeout-ms",
      "connect-accept-encoding",
      "connect-content-encoding",
      "grpc-timeout",
      "x-grpc-web",
      "x-user-agent",
      "traceparent",
      "tracestate",
    ].join(", "),
    expose_headers: ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "connect-content-encoding", "traceparent"].join(", "),
    max_age: "7200",
  };
}

export function edgeConfig(options: EdgeOptions): YamlValue {
  const { topology, descriptors } = options;
  const exposed = topology.edge?.exposes ?? [];
  const all = Object.keys(topology.services);
  const servicesOf = (name: string) => descriptors.get(name) ?? [];

  const backend = edgeBackendCluster(options.reflection);
  // The budgets each upstream's routes use: one cluster for each.
  const budgets = new Map<string, Set<Budget>>();
  const clusterFor = (upstream: string, c: MethodContract): string => {
    const budget = budgetOf(c);
    budgets.set(upstream, (budgets.get(upstream) ?? new Set<Budget>()).add(budget));
    return upstreamClusterName(upstream, budget);
  };
  // The backend serves the browser app and the mesh-wide RPCs (unary) whatever the routes below use.
  budgets.set(backend, new Set<Budget>(["calls"]));

  const routes: Route[] = [];
  for (const name of exposed) {
    for (const c of methodContracts(servicesOf(name))) routes.push(methodRoute(c, { cluster: clusterFor(name, c), retries: true }));
  }
  if (options.reflection) {
    for (const c of methodContracts(reflectionServices)) routes.push(methodRoute(c, { cluster: clusterFor(backend, c), retries: false }));
  } else {
    routes.push(grpcStatusRoute("reflection-off", "/grpc.reflection.", UNIMPLEMENTED, "server reflection is turned off at this edge"));
  }
  const health = methodContracts([healthService]);
  for (const name of all) {
    const headers = [headerIs(SERVICE_HEADER, name)];
    for (const c of health.filter((h) => !h.streaming)) routes.push(methodRoute(c, { cluster: clusterFor(name, c), retries: false, headers }));
    if (exposed.includes(name)) {
      for (const c of methodContracts(instanceAdminServices)) routes.push(methodRoute(c, { cluster: clusterFor(name, c), retries: true, headers }));
    }
  }
  // Without the header: the whole mesh, from the edge backend. One process, so no retries.
  const meshWide = [headerAbsent(SERVICE_HEADER)];
  for (const c of methodContracts(instanceAdminServices)) {
    routes.push({ ...methodRoute(c, { cluster: clusterFor(backend, c), retries: false, headers: meshWide }), name: `mesh/${c.path.slice(1)}` });
  }
  const needsHeader = `name the service with the ${SERVICE_HEADER} header (${all.join(", ")})`;
  for (const c of health.filter((h) => h.streaming)) {
    const check = `/${healthService.typeName}/Check`;
    routes.push(grpcStatusRoute(`not-at-edge${c.path}`, c.path, UNIMPLEMENTED, `${c.path.slice(1)} is not offered at the edge: ask ${check.slice(1)} with the ${SERVICE_HEADER} header`, { exact: true }));
  }
  routes.push(grpcStatusRoute("health-needs-service", `/${healthService.typeName}/`, INVALID_ARGUMENT, needsHeader));
  routes.push(grpcStatusRoute("admin-needs-service", "/mesh.v1.", INVALID_ARGUMENT, `${needsHeader}, or leave it out for the whole mesh`));
  routes.push(grpcStatusRoute("not-exposed", "/", UNIMPLEMENTED, `no such method at the edge: topology.json exposes ${exposed.join(", ")}`, { grpcOnly: true }));
  // The edge backend's own endpoints are not the shop's: scrape it on its port.
  for (const path of ["/metrics", "/healthz"]) routes.push({ name: `hidden${path}`, match: { path }, direct_response: { status: 404 } });
  // Everything else read by GET or HEAD is the browser app's (index.html, /assets/*).
  routes.push({
    name: "web-app",
    match: { prefix: "/", headers: [readMethods] },
    route: { cluster: backend, timeout: WEB_TIMEOUT },
    response_headers_to_add: Object.entries(SECURITY_HEADERS).map(([key, value]) => responseHeader(key, value)),
  });

  // Every route that forwards gets its budget; Login and SignUp per client address too.
  const routed = new Set(routes.flatMap((r) => (r.route !== undefined && typeof r.match === "object" && r.match !== null && "path" in r.match ? [String(r.match.path).slice(1)] : [])));
  const limits = edgeRateLimitsOf(topology, routed, options.rateLimits);
  const limited = routes.map((r) => limitRoute(r, limits));

  const listener = httpListener({
    name: "edge",
    address: options.listenAddress,
    port: options.ports.listener,
    proxy: "edge",
    routes: limited,
    statsFor: exposed.flatMap(servicesOf),
    edge: true,
    responseHeadersToRemove: ["x-envoy-upstream-service-time"],
    // CORS first: a preflight is answered before any limit, and a call turned away still carries the CORS headers a browser needs to read it.
    filters: [{ name: "envoy.filters.http.cors", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" } }, rateLimitFilter],
    http2: EDGE_HTTP2,
    virtualHostFilters: { "envoy.filters.http.cors": corsPolicy(options.webOrigins) },
    tracing: options.tracing,
    // How a call the rate limiter turned away is answered, by protocol (edge-limits.ts).
    localReplies: rateLimitedReplies(),
    transportSocket: options.tls ? tlsTransportSocket(options.tls) : undefined,
  });
  sanitizeClientCert(listener);

  const clusters: YamlValue[] = all.flatMap((name) =>
    budgetsUsed(budgets.get(name) ?? []).map((budget) =>
      upstreamCluster({ name, budget, endpoints: options.endpointsOf(name), discovery: options.discovery, healthService: servicesOf(name)[0]?.typeName ?? "", transportSocket: serviceTls(options.mtls, name) }),
    ),
  );
  // Beside the edge on loopback, in Kubernetes a container of the edge's pod.
  for (const budget of budgetsUsed(budgets.get(backend) ?? [])) {
    clusters.push(upstreamCluster({ name: backend, budget, endpoints: [{ address: "127.0.0.1", port: options.ports.reflection }], discovery: "STATIC", healthService: "" }));
  }
  clusters.push(...(options.extraClusters ?? []));

  return bootstrap({ node: "edge", cluster: "edge", adminPort: options.ports.admin, listeners: [listener], clusters });
}

/**
 * Outside clients cannot claim an identity: an incoming x-forwarded-client-cert
 * is dropped and none is added (SANITIZE, Envoy's default, stated so that no
 * change of default or of http.ts lets a forged one through).
 */
function sanitizeClientCert(listener: YamlValue): void {
  const chain = (listener as { filter_chains: Array<{ filters: Array<{ typed_config: Record<string, YamlValue> }> }> }).filter_chains[0];
  chain.filters[0].typed_config.forward_client_cert_details = "SANITIZE";
}

/** The edge's side of mTLS to one service's inbound listeners (none without mTLS). */
function serviceTls(mtls: MeshTls | undefined, service: string): YamlValue | undefined {
  return mtls ? upstreamTls(mtls, service) : undefined;
}
