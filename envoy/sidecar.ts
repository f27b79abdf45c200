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
//
// With mTLS (mtls.ts; every generated config has it) the inbound listener
// takes only TLS with a client certificate of the mesh CA, lets through only
// the SPIFFE IDs topology.json allows (RBAC: the services that may call this
// one, the edge, the edge backend; PERMISSION_DENIED for anyone else, even a
// caller that bypasses its own outbound routes), and hands the app the
// verified caller in x-forwarded-client-cert. Each outbound cluster presents
// this service's certificate and accepts only the callee's.
//
// On both sides streams have budgets of their own (policy.ts): a route goes to
// the cluster of its method's budget, so streams of signed-in callers
// (local_app_streams, <callee>-streams), public streams (Health/Watch:
// local_app_public_streams, <callee>-public-streams) and unary calls
// (local_app, <callee>) never count against the same circuit breaker.
import type { DescService } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import { budgetsUsed, localAppCluster, localAppClusterName, upstreamCluster, upstreamClusterName } from "./clusters.ts";
import type { Endpoint } from "./clusters.ts";
import { healthService, instanceAdminServices, methodContracts } from "./contracts.ts";
import { bootstrap, httpListener } from "./http.ts";
import { downstreamTls, inboundPolicy, inboundRbac, rbacDeniedReplies, upstreamTls } from "./mtls.ts";
import type { MeshTls } from "./mtls.ts";
import type { TracingExport } from "./http.ts";
import { budgetOf } from "./policy.ts";
import type { CallerLimits, StreamLimits } from "./policy.ts";
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
  /** Circuit breakers of the outbound clusters for unary calls. Default CALLER_LIMITS (policy.ts); the fault drills set smaller ones. */
  callerLimits?: CallerLimits;
  /** Circuit breakers of the outbound clusters for streams of signed-in callers. Default STREAM_LIMITS. */
  streamLimits?: StreamLimits;
  /** Circuit breakers of the outbound clusters for public streams. Default PUBLIC_STREAM_LIMITS. */
  publicStreamLimits?: StreamLimits;
  /** mTLS and RBAC from the topology (mtls.ts); the generator always sets it. Without it (some drills, the interop mesh) everything is cleartext and unchecked. */
  mtls?: MeshTls;
}

export function sidecarConfig(options: SidecarOptions): YamlValue {
  const { topology, descriptors, service } = options;
  const own = descriptors.get(service) ?? [];
  const calls = topology.services[service]?.calls ?? [];

  const inboundContracts = methodContracts([...own, healthService, ...instanceAdminServices]);
  const policy = inboundPolicy(topology, service);
  const inbound = httpListener({
    name: "inbound",
    address: options.inboundAddress,
    port: options.ports.inbound,
    proxy: options.node,
    routes: inboundContracts.map((c) => methodRoute(c, { cluster: localAppClusterName(budgetOf(c)), retries: false })),
    statsFor: own,
    tracing: options.tracing,
    ...(options.mtls
      ? {
          transportSocket: downstreamTls(options.mtls),
          forwardClientCert: true,
          filters: [inboundRbac({ policy, spiffe: options.mtls.spiffe, own, health: healthService, admin: instanceAdminServices })],
          localReplies: rbacDeniedReplies(service, policy),
        }
      : {}),
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
      ...callees.flatMap(({ callee, services }) =>
        methodContracts(services).map((c) => methodRoute(c, { cluster: upstreamClusterName(callee, budgetOf(c)), retries: true })),
      ),
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
      ...budgetsUsed(inboundContracts.map(budgetOf)).map((budget) => localAppCluster(options.ports.app, budget)),
      ...callees.flatMap(({ callee, services }) =>
        budgetsUsed(methodContracts(services).map(budgetOf)).map((budget) =>
          upstreamCluster({
            name: callee,
            budget,
            endpoints: options.endpointsOf(callee),
            discovery: options.discovery,
            healthService: services[0]?.typeName ?? "",
            limits: options.callerLimits,
            streamLimits: budget === "streams" ? options.streamLimits : budget === "public-streams" ? options.publicStreamLimits : undefined,
            transportSocket: options.mtls ? upstreamTls(options.mtls, callee) : undefined,
          }),
        ),
      ),
      ...(options.extraClusters ?? []),
    ],
  });
}
