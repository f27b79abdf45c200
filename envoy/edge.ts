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
// - Reflection, answered by a small process beside the edge that knows every
//   service's descriptors (no single service does); a switch turns it off.
// - Health and the per-instance admin services of one service, chosen with
//   the x-shop-service header: one path cannot say which service it means.
import type { DescService } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import { upstreamCluster } from "./clusters.ts";
import type { Endpoint } from "./clusters.ts";
import { healthService, instanceAdminServices, methodContracts, reflectionServices } from "./contracts.ts";
import { bootstrap, httpListener } from "./http.ts";
import type { TracingExport } from "./http.ts";
import type { EdgePorts } from "./ports.ts";
import { grpcStatusRoute, headerIs, methodRoute } from "./routes.ts";
import type { Route } from "./routes.ts";
import type { YamlValue } from "./yaml.ts";

/** The header that names the service a health or admin call at the edge is for. */
export const SERVICE_HEADER = "x-shop-service";

/** Origins a browser app may call the edge from when none are configured: the Vite dev server. */
export const DEFAULT_WEB_ORIGINS: readonly string[] = ["http://localhost:5173", "http://127.0.0.1:5173"];

const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

export interface EdgeOptions {
  topology: Topology;
  descriptors: ReadonlyMap<string, readonly DescService[]>;
  ports: EdgePorts;
  /** Address of the public listener: 127.0.0.1 locally, 0.0.0.0 in a pod. */
  listenAddress: string;
  endpointsOf: (service: string) => Endpoint[];
  discovery: "STATIC" | "STRICT_DNS";
  /** Route grpc.reflection.* to the reflection backend (true), or answer UNIMPLEMENTED. */
  reflection: boolean;
  webOrigins: readonly string[];
  tracing?: TracingExport;
  extraClusters?: readonly YamlValue[];
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

  const routes: Route[] = [];
  for (const name of exposed) {
    for (const c of methodContracts(servicesOf(name))) routes.push(methodRoute(c, { cluster: name, retries: true }));
  }
  if (options.reflection) {
    for (const c of methodContracts(reflectionServices)) routes.push(methodRoute(c, { cluster: "reflection", retries: false }));
  } else {
    routes.push(grpcStatusRoute("reflection-off", "/grpc.reflection.", UNIMPLEMENTED, "server reflection is turned off at this edge"));
  }
  for (const name of all) {
    const headers = [headerIs(SERVICE_HEADER, name)];
    for (const c of methodContracts([healthService])) routes.push(methodRoute(c, { cluster: name, retries: false, headers }));
    if (exposed.includes(name)) {
      for (const c of methodContracts(instanceAdminServices)) routes.push(methodRoute(c, { cluster: name, retries: true, headers }));
    }
  }
  const needsHeader = `name the service with the ${SERVICE_HEADER} header (${all.join(", ")})`;
  routes.push(grpcStatusRoute("health-needs-service", `/${healthService.typeName}/`, INVALID_ARGUMENT, needsHeader));
  routes.push(grpcStatusRoute("admin-needs-service", "/mesh.v1.", INVALID_ARGUMENT, needsHeader));
  routes.push(grpcStatusRoute("not-exposed", "/", UNIMPLEMENTED, `no such method at the edge: topology.json exposes ${exposed.join(", ")}`, { grpcOnly: true }));

  const listener = httpListener({
    name: "edge",
    address: options.listenAddress,
    port: options.ports.listener,
    proxy: "edge",
    routes,
    statsFor: exposed.flatMap(servicesOf),
    edge: true,
    responseHeadersToRemove: ["x-envoy-upstream-service-time"],
    filters: [{ name: "envoy.filters.http.cors", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" } }],
    virtualHostFilters: { "envoy.filters.http.cors": corsPolicy(options.webOrigins) },
    tracing: options.tracing,
  });

  const clusters: YamlValue[] = all.map((name) =>
    upstreamCluster({ name, endpoints: options.endpointsOf(name), discovery: options.discovery, healthService: servicesOf(name)[0]?.typeName ?? "" }),
  );
  if (options.reflection) {
    // Beside the edge on loopback, in Kubernetes a container of the edge's pod.
    clusters.push(upstreamCluster({ name: "reflection", endpoints: [{ address: "127.0.0.1", port: options.ports.reflection }], discovery: "STATIC", healthService: "" }));
  }
  clusters.push(...(options.extraClusters ?? []));

  return bootstrap({ node: "edge", cluster: "edge", adminPort: options.ports.admin, listeners: [listener], clusters });
}
