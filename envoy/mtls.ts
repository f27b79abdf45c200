// Mutual TLS between the mesh's proxies and who may call whom, as Envoy
// config. What it guarantees:
//
// - Identities are SPIFFE IDs, spiffe://<trust domain>/ns/<namespace>/sa/<name>
//   (default spiffe://shop.local/ns/shop/sa/<name>), one per topology
//   service, one for the edge ("edge") and one for the edge backend
//   ("edge-backend"), carried as the certificate's only URI SAN.
// - Certificates reach Envoy only through file-based SDS: two resource files
//   per identity (its certificate and key; the mesh CA), each naming files in
//   the identity's certificate folder, and both watched (the resource file's
//   folder, and the certificate folder through watched_directory). Renaming a
//   new ..data into the certificate folder (what the kubelet does when a
//   Secret changes, and what runner/mesh-certs.ts does) rotates the
//   certificate without restarting Envoy; open connections are not cut.
// - An inbound listener accepts only TLS 1.3 with a client certificate
//   signed by the mesh CA, ALPN h2; an upstream cluster to another service's
//   inbound listener presents this proxy's certificate and accepts only the
//   callee's SPIFFE ID.
// - The RBAC filter of an inbound listener allows, by verified SPIFFE ID and
//   path: the services topology.json lets call this one (its own services
//   and health), the edge (health always; its own services and the
//   per-instance admin services when the edge exposes it) and the edge
//   backend (the per-instance admin services it fans out to). Anyone else is
//   answered 403, which a gRPC caller reads as PERMISSION_DENIED (7).
import { posix } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { DEFAULT_SPIFFE_NAMESPACE, DEFAULT_TRUST_DOMAIN } from "@shop/platform";
import type { PeerIdentityOptions, Topology } from "@shop/platform";
import type { YamlValue } from "./yaml.ts";

// The naming the platform reads callers by (platform/peer-identity.ts): one definition for both.
export { DEFAULT_SPIFFE_NAMESPACE, DEFAULT_TRUST_DOMAIN } from "@shop/platform";
export const EDGE_IDENTITY = "edge";
export const EDGE_BACKEND_IDENTITY = "edge-backend";

/** One identity's certificate folder, as a kubernetes.io/tls Secret (with ca.crt) is mounted. */
export const TLS_FILES = { cert: "tls.crt", key: "tls.key", ca: "ca.crt" } as const;

/** Where the kubernetes target reads its certificate (a Secret the chart mounts) and its SDS files (the chart's ConfigMap at /etc/envoy). */
export const KUBERNETES_TLS_DIR = "/etc/shop/mesh-tls";
export const KUBERNETES_SDS_DIR = "/etc/envoy";

/** The SDS secrets' names inside the resource files. */
export const CERT_SECRET = "mesh_cert";
export const CA_SECRET = "mesh_ca";

export type SpiffeOptions = PeerIdentityOptions;

/** spiffe://shop.local/ns/shop/sa/orders */
export function spiffeId(identity: string, options: SpiffeOptions = {}): string {
  return `spiffe://${options.trustDomain ?? DEFAULT_TRUST_DOMAIN}/ns/${options.namespace ?? DEFAULT_SPIFFE_NAMESPACE}/sa/${identity}`;
}

/** What one proxy needs to speak mTLS: who it is, where its SDS resource files are, and the SPIFFE naming. */
export interface MeshTls {
  readonly identity: string;
  /** The SDS resource file of its certificate and key. */
  readonly certSds: string;
  /** The SDS resource file of the mesh CA. */
  readonly caSds: string;
  readonly spiffe: SpiffeOptions;
}

/** The SDS resource files one proxy reads, by name inside the SDS folder: local per identity, one pair for every pod in Kubernetes. */
export function sdsFileNames(identity: string | undefined): { cert: string; ca: string } {
  return identity === undefined ? { cert: "sds-mesh-cert.yaml", ca: "sds-mesh-ca.yaml" } : { cert: `sds-${identity}-cert.yaml`, ca: `sds-${identity}-ca.yaml` };
}

function sdsConfig(path: string): YamlValue {
  return { path_config_source: { path, watched_directory: { path: posix.dirname(path) } }, resource_api_version: "V3" };
}

const secretRef = (name: string, path: string): YamlValue => ({ name, sds_config: sdsConfig(path) });

/** The two SDS resource files of a certificate folder: its certificate and key, and the CA it trusts. */
export function sdsResources(tlsDir: string): { cert: YamlValue; ca: YamlValue } {
  const file = (name: string) => posix.join(tlsDir, name);
  return {
    cert: {
      resources: [
        {
          "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
          name: CERT_SECRET,
          tls_certificate: {
            certificate_chain: { filename: file(TLS_FILES.cert) },
            private_key: { filename: file(TLS_FILES.key) },
            // A move into this folder (the ..data swap) reloads both files together.
            watched_directory: { path: tlsDir },
          },
        },
      ],
    },
    ca: {
      resources: [
        {
          "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
          name: CA_SECRET,
          validation_context: {
            trusted_ca: { filename: file(TLS_FILES.ca) },
            watched_directory: { path: tlsDir },
          },
        },
      ],
    },
  };
}

const TLS_PARAMS: YamlValue = { tls_minimum_protocol_version: "TLSv1_3", tls_maximum_protocol_version: "TLSv1_3" };

/** An inbound listener's transport socket: TLS 1.3, a client certificate from the mesh CA required, h2. */
export function downstreamTls(tls: MeshTls): YamlValue {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
      require_client_certificate: true,
      common_tls_context: {
        tls_params: TLS_PARAMS,
        alpn_protocols: ["h2"],
        tls_certificate_sds_secret_configs: [secretRef(CERT_SECRET, tls.certSds)],
        validation_context_sds_secret_config: secretRef(CA_SECRET, tls.caSds),
      },
    },
  };
}

/** A cluster's transport socket to the inbound listeners of `callee`: this proxy's certificate, and only the callee's SPIFFE ID accepted. */
export function upstreamTls(tls: MeshTls, callee: string): YamlValue {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      common_tls_context: {
        tls_params: TLS_PARAMS,
        alpn_protocols: ["h2"],
        tls_certificate_sds_secret_configs: [secretRef(CERT_SECRET, tls.certSds)],
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: "URI", matcher: { exact: spiffeId(callee, tls.spiffe) } }] },
          validation_context_sds_secret_config: secretRef(CA_SECRET, tls.caSds),
        },
      },
    },
  };
}

/** Who may call one service's inbound listener, and which paths each may use. */
export interface InboundPolicy {
  /** Services whose topology `calls` name this one. */
  readonly callers: readonly string[];
  /** The edge exposes this service (its methods and per-instance admin services are routed there). */
  readonly exposed: boolean;
}

export function inboundPolicy(topology: Topology, service: string): InboundPolicy {
  const callers = Object.entries(topology.services)
    .filter(([name, s]) => name !== service && s.calls.includes(service))
    .map(([name]) => name);
  return { callers, exposed: (topology.edge?.exposes ?? []).includes(service) };
}

const prefixes = (services: readonly DescService[]): YamlValue => ({
  or_rules: { rules: services.map((s) => ({ url_path: { path: { prefix: `/${s.typeName}/` } } })) },
});

const principals = (identities: readonly string[], spiffe: SpiffeOptions): YamlValue => ({
  or_ids: { ids: identities.map((i) => ({ authenticated: { principal_name: { exact: spiffeId(i, spiffe) } } })) },
});

export interface RbacOptions {
  readonly policy: InboundPolicy;
  readonly spiffe: SpiffeOptions;
  /** The instance's own gRPC services. */
  readonly own: readonly DescService[];
  readonly health: DescService;
  /** OpsService, EventAdminService. */
  readonly admin: readonly DescService[];
}

/** The RBAC HTTP filter of an inbound listener (see the top of this file). */
export function inboundRbac(options: RbacOptions): YamlValue {
  const { policy, spiffe } = options;
  const policies: Record<string, YamlValue> = {};
  if (policy.callers.length > 0) {
    policies["topology-callers"] = { permissions: [prefixes([...options.own, options.health])], principals: [principals(policy.callers, spiffe)] };
  }
  policies.edge = {
    permissions: [prefixes(policy.exposed ? [...options.own, options.health, ...options.admin] : [options.health])],
    principals: [principals([EDGE_IDENTITY], spiffe)],
  };
  policies["edge-backend"] = { permissions: [prefixes(options.admin)], principals: [principals([EDGE_BACKEND_IDENTITY], spiffe)] };
  return {
    name: "envoy.filters.http.rbac",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
      rules: { action: "ALLOW", policies },
    },
  };
}

/**
 * What a caller the RBAC filter turned away reads (grpc-message, or the body
 * of a Connect answer): who it is, what it called, and what topology.json
 * allows. 403 is only ever the RBAC filter's at an inbound listener (the
 * app's own answers are not local replies).
 */
export function rbacDeniedReplies(service: string, policy: InboundPolicy): YamlValue {
  const callers = policy.callers.length > 0 ? policy.callers.join(", ") : "no service";
  const edge = policy.exposed ? "its methods, health and admin services" : "its health only";
  const text = `%DOWNSTREAM_PEER_URI_SAN% may not call %REQ(:PATH)% on ${service}: topology.json lets ${callers} call ${service}; the edge may call ${edge}; the edge backend its admin services`;
  if ([service, ...policy.callers].some((name) => name.includes("%"))) throw new Error(`a service name with "%" would be read as a format string: ${service}`);
  return {
    mappers: [
      {
        filter: { status_code_filter: { comparison: { op: "EQ", value: { default_value: 403, runtime_key: "mesh.rbac_denied_status" } } } },
        body_format_override: { text_format_source: { inline_string: text } },
      },
    ],
  };
}
