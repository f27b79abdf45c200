// The sidecar of one service instance. Two listeners:
//
// - inbound: what the edge and other services' sidecars call. Every method of
//   the instance's own services (with its deadline as route timeout), its
//   health and its per-instance admin services go to the app on loopback.
//   Never retries: the caller's proxy does.
// - outbound: the app's SHOP_REMOTE_ADDRESS. Only the services topology.json
//   lets this service call are routed, each to a health-checked,
//   load-balanced cluster of their replicas, with retries where the contract
//   allows them. Anything else answers PERMISSION_DENIED naming the rule.
import type { DescService } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import { localAppCluster, upstreamCluster } from "./clusters.ts";
import type { Endpoint } from "./clusters.ts";
import { healthService, instanceAdminServices, methodContracts } from "./contracts.ts";
import { bootstrap, httpListener } from "./http.ts";
import type { TracingExport } from "./http.ts";
import type { CallerLimits } from "./policy.ts";
import type { InstancePorts } from "./ports.ts";
import { grpcStatusRoute, methodRoute } from "./routes.ts";
import type { YamlValue } from "./yaml.ts";

const PERMISSION_DENIED = 7;

export interface SidecarOptions {
  topology: Topology;
  /** The gRPC services of every topology service. */
  descriptors: ReadonlyMap<string, readonly DescService[]>;
  service: string;
  /** Envoy's node id: the instance ("catalog-1"), or the service in Kubernetes where every pod is alike. */
  node: string;
  ports: InstancePorts;
  /** Address of the inbound listener: 127.0.0.1 locally, 0.0.0.0 in a pod. */
  inboundAddress: string;
  /** Where a callee's inbound listeners are. */
  endpointsOf: (service: string) => Endpoint[];
  discovery: "STATIC" | "STRICT_DNS";
  tracing?: TracingExport;
  /** Extra clusters (the trace collector). */
  extraClusters?: readonly YamlValue[];
  /** Circuit breakers of the outbound clusters. Default CALLER_LIMITS (policy.ts); the fault drills set smaller ones. */
  callerLimits?: CallerLimits;
}

export function sidecarConfig(options: SidecarOptions): YamlValue {
  const { topology, descriptors, service } = options;
  const own = descriptors.get(service) ?? [];
  const calls = topology.services[service]?.calls ?? [];

  const inbound = httpListener({
    name: "inbound",
    address: options.inboundAddress,
    port: options.ports.inbound,
    proxy: options.node,
    routes: methodContracts([...own, healthService, ...instanceAdminServices]).map((c) => methodRoute(c, { cluster: "local_app", retries: false })),
    statsFor: own,
    tracing: options.tracing,
  });

  const callees = calls.map((callee) => ({ callee, services: descriptors.get(callee) ?? [] }));
  const allowed = calls.length > 0 ? calls.join(", ") : "no service";
  const outbound = httpListener({
    name: "outbound",
    // Only the app beside it may use this listener.
    address: "127.0.0.1",
    port: options.ports.outbound,
    proxy: options.node,
    routes: [
      ...callees.flatMap(({ callee, services }) => methodContracts(services).map((c) => methodRoute(c, { cluster: callee, retries: true }))),
      grpcStatusRoute("not-in-topology", "/", PERMISSION_DENIED, `${service} may not call this: topology.json lets it call ${allowed}`),
    ],
    statsFor: callees.flatMap((c) => c.services),
    tracing: options.tracing,
  });

  return bootstrap({
    node: options.node,
    cluster: service,
    adminPort: options.ports.admin,
    listeners: [inbound, outbound],
    clusters: [
      localAppCluster(options.ports.app),
      ...callees.map(({ callee, services }) =>
        upstreamCluster({
          name: callee,
          endpoints: options.endpointsOf(callee),
          discovery: options.discovery,
          healthService: services[0]?.typeName ?? "",
          limits: options.callerLimits,
        }),
      ),
      ...(options.extraClusters ?? []),
    ],
  });
}
