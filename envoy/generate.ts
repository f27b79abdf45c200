// Writes every Envoy config of the mesh from topology.json and the contracts
// in the generated descriptors: one sidecar per service instance and the edge.
//
//   node envoy/generate.ts            write envoy/generated/{local,kubernetes}/*.yaml, and the chart's copies
//   node envoy/generate.ts --check    exit 1 when a committed config (or a chart copy) differs from what would be written
//
// Two targets, one generator:
//   local       every process on loopback, one sidecar per replica, ports
//               from the scheme in ports.ts (`make mesh` runs these)
//   kubernetes  one sidecar per service (every pod of it alike), upstreams
//               found through the cluster DNS of headless Services
//               (<service>.<namespace>.svc.cluster.local, STRICT_DNS); the
//               app is on the pod's 127.0.0.1 (the Helm chart uses these)
//
// Helm reads no file outside its chart, so the kubernetes target is also
// written into helm/shop/files/envoy/, with a verbatim copy of topology.json
// in helm/shop/files/: the chart renders its ConfigMaps, Services and
// NetworkPolicies from these copies, never from a hand-written second list.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTopology } from "@shop/platform";
import type { Topology } from "@shop/platform";
import { collectorCluster } from "./clusters.ts";
import { loadServiceDescriptors } from "./contracts.ts";
import { DEFAULT_WEB_ORIGINS, EDGE_TLS_FILES, edgeConfig } from "./edge.ts";
import type { EdgeTls } from "./edge.ts";
import type { TopologyRateLimits } from "./edge-limits.ts";
import type { TracingExport } from "./http.ts";
import { EDGE_IDENTITY, KUBERNETES_SDS_DIR, KUBERNETES_TLS_DIR, sdsFileNames, sdsResources } from "./mtls.ts";
import type { MeshTls, SpiffeOptions } from "./mtls.ts";
import { checkPortScheme, edgePorts, instancePorts, instancesOf } from "./ports.ts";
import { sidecarConfig } from "./sidecar.ts";
import { toYaml } from "./yaml.ts";
import type { YamlValue } from "./yaml.ts";

export type TargetName = "local" | "kubernetes";
export const TARGETS: readonly TargetName[] = ["local", "kubernetes"];

/** Where the committed configs live: envoy/generated/<target>/. */
export const generatedRoot = fileURLToPath(new URL("./generated/", import.meta.url));

/** The Helm chart's files/ folder: envoy/ (the kubernetes target, verbatim) and topology.json. */
export const chartFilesRoot = fileURLToPath(new URL("../helm/shop/files/", import.meta.url));
const topologyPath = fileURLToPath(new URL("../topology.json", import.meta.url));

export interface GenerateOptions {
  target: TargetName;
  /** Default: the repository's topology.json. */
  topology?: Topology;
  /** local: added to every port (a second mesh beside the first). Default 0. */
  portOffset?: number;
  /** kubernetes: the namespace in cluster DNS names. Default "shop". */
  namespace?: string;
  /** Route grpc.reflection.* at the edge. Default true. */
  reflection?: boolean;
  /** Origins allowed by the edge's CORS policy. Default: the topology's edge.webOrigins, else the Vite dev server. */
  webOrigins?: readonly string[];
  /** Export Envoy's own spans over OTLP/HTTP to this collector. Default off: Envoy passes traceparent through untouched. */
  tracing?: TracingExport;
  /** mTLS between the proxies and RBAC from the topology (mtls.ts). Default true; false only for experiments and benchmarks. */
  mtls?: boolean;
  /** local: the folder of the identities' certificate folders (runner/mesh-certs.ts). Default LOCAL_CERTS_DIR. kubernetes: always KUBERNETES_TLS_DIR. */
  certsDir?: string;
  /** local: where the proxies find the SDS resource files written beside their configs. Default LOCAL_SDS_DIR. kubernetes: always KUBERNETES_SDS_DIR. */
  sdsDir?: string;
  /** The SPIFFE IDs' trust domain and namespace. Default shop.local and shop, in both targets (not the Kubernetes namespace). */
  spiffe?: SpiffeOptions;
  /** The edge's rate limits, over topology.json's edge.rateLimits and the defaults (envoy/edge-limits.ts). */
  edgeRateLimits?: TopologyRateLimits;
  /**
   * local: edge.yaml serves TLS with this certificate (`make mesh` with
   * EDGE_TLS=1). kubernetes: ignored; edge-tls.yaml is always written beside
   * edge.yaml, reading EDGE_TLS_FILES, for the chart to pick.
   */
  edgeTls?: EdgeTls;
}

export interface GeneratedConfig {
  /** File name inside the target's folder: "sidecar-catalog-1.yaml", "edge.yaml". */
  readonly file: string;
  /** "sds": an SDS resource file (a certificate folder or the mesh CA, mtls.ts), read by the proxies, not a bootstrap. */
  readonly kind: "sidecar" | "edge" | "sds";
  /** The instance ("catalog-1"), the service in Kubernetes, or "edge". */
  readonly node: string;
  /** The topology service of a sidecar. */
  readonly service?: string;
  readonly config: YamlValue;
  readonly text: string;
}

/**
 * Where the committed local configs expect the certificates and their SDS
 * files: `make mesh`'s folder, relative to the repository (Envoy runs there).
 * `make mesh` itself writes absolute paths under its MESH_DIR.
 */
export const LOCAL_CERTS_DIR = ".mesh/certs";
export const LOCAL_SDS_DIR = ".mesh/envoy";

const HEADER = [
  "Generated by envoy/generate.ts from topology.json and the method options in proto/: do not edit.",
  "Regenerate with `make generate-envoy`; the tests fail while this file is stale.",
].join("\n");

export async function generateConfigs(options: GenerateOptions): Promise<GeneratedConfig[]> {
  const topology = options.topology ?? loadTopology();
  checkPortScheme(topology);
  const descriptors = await loadServiceDescriptors(topology);
  const offset = options.target === "local" ? (options.portOffset ?? 0) : 0;
  const namespace = options.namespace ?? "shop";
  const local = options.target === "local";
  const discovery = local ? "STATIC" : "STRICT_DNS";
  const listenAddress = local ? "127.0.0.1" : "0.0.0.0";
  const extraClusters = options.tracing ? [collectorCluster({ address: options.tracing.host, port: options.tracing.port }, local ? "STATIC" : "STRICT_DNS")] : [];

  const endpointsOf = (service: string) => {
    const s = topology.services[service];
    if (local) return instancesOf(topology, offset).filter((i) => i.service === service).map((i) => ({ address: "127.0.0.1", port: i.ports.inbound }));
    return [{ address: `${service}.${namespace}.svc.cluster.local`, port: instancePorts(topology, service, 0).inbound }].filter(() => s !== undefined);
  };
  const common = { topology, descriptors, endpointsOf, discovery, tracing: options.tracing, extraClusters } as const;

  // mTLS: each proxy reads its certificate and the mesh CA through two SDS
  // resource files; locally one pair per identity, in Kubernetes one pair for
  // every pod (each pod mounts its own identity's Secret at KUBERNETES_TLS_DIR).
  const mtls = options.mtls ?? true;
  const sdsDir = local ? (options.sdsDir ?? LOCAL_SDS_DIR) : KUBERNETES_SDS_DIR;
  const certsDir = options.certsDir ?? LOCAL_CERTS_DIR;
  const meshTlsOf = (identity: string): MeshTls | undefined => {
    if (!mtls) return undefined;
    const names = sdsFileNames(local ? identity : undefined);
    return { identity, certSds: posix.join(sdsDir, names.cert), caSds: posix.join(sdsDir, names.ca), spiffe: options.spiffe ?? {} };
  };

  const sidecars = local
    ? instancesOf(topology, offset).map((i) => ({ node: i.name, service: i.service, ports: i.ports }))
    : Object.keys(topology.services).map((service) => ({ node: service, service, ports: instancePorts(topology, service, 0) }));

  const out: GeneratedConfig[] = [];
  for (const s of sidecars) {
    const config = plain(sidecarConfig({ ...common, service: s.service, node: s.node, ports: s.ports, inboundAddress: listenAddress, mtls: meshTlsOf(s.service) }));
    out.push({ file: `sidecar-${s.node}.yaml`, kind: "sidecar", node: s.node, service: s.service, config, text: toYaml(config, HEADER) });
  }
  const webOrigins = options.webOrigins ?? (topology.edge as { webOrigins?: readonly string[] } | undefined)?.webOrigins ?? DEFAULT_WEB_ORIGINS;
  const edgeOptions = { ...common, ports: edgePorts(topology, offset), listenAddress, reflection: options.reflection ?? true, webOrigins, rateLimits: options.edgeRateLimits, mtls: meshTlsOf(EDGE_IDENTITY) };
  const edge = plain(edgeConfig({ ...edgeOptions, tls: local ? options.edgeTls : undefined }));
  out.push({ file: "edge.yaml", kind: "edge", node: "edge", config: edge, text: toYaml(edge, HEADER) });
  if (!local) {
    // The same edge over TLS, for the chart to run when edge TLS is on (its Secret mounted at /etc/shop/edge-tls).
    const tls = plain(edgeConfig({ ...edgeOptions, tls: EDGE_TLS_FILES }));
    out.push({ file: "edge-tls.yaml", kind: "edge", node: "edge", config: tls, text: toYaml(tls, HEADER) });
  }
  if (mtls) out.push(...sdsFiles(local ? [...Object.keys(topology.services), EDGE_IDENTITY] : [undefined], certsDir));
  return out;
}

/** The SDS resource files of these identities (undefined: the one pair every Kubernetes pod reads, from KUBERNETES_TLS_DIR). */
function sdsFiles(identities: ReadonlyArray<string | undefined>, certsDir: string): GeneratedConfig[] {
  return identities.flatMap((identity) => {
    const names = sdsFileNames(identity);
    const resources = sdsResources(identity === undefined ? KUBERNETES_TLS_DIR : posix.join(certsDir, identity));
    return (["cert", "ca"] as const).map((which) => ({ file: names[which], kind: "sds" as const, node: identity ?? "mesh", config: resources[which], text: toYaml(resources[which], HEADER) }));
  });
}

/** The config as JSON data: keys left undefined by the builders are gone. */
function plain(config: YamlValue): YamlValue {
  return JSON.parse(JSON.stringify(config)) as YamlValue;
}

/** Writes the configs into folder, removing YAML files of instances that no longer exist. */
export function writeConfigs(folder: string, configs: readonly GeneratedConfig[]): void {
  mkdirSync(folder, { recursive: true });
  const keep = new Set(configs.map((c) => c.file));
  for (const file of readdirSync(folder)) if (file.endsWith(".yaml") && !keep.has(file)) rmSync(join(folder, file));
  for (const c of configs) writeFileSync(join(folder, c.file), c.text);
}

/** What differs between the committed configs of a target and freshly generated ones: "local/edge.yaml differs", ... */
export function staleFiles(folder: string, configs: readonly GeneratedConfig[], label: string): string[] {
  const problems: string[] = [];
  let present: string[] = [];
  try {
    present = readdirSync(folder).filter((f) => f.endsWith(".yaml"));
  } catch {
    present = [];
  }
  for (const c of configs) {
    if (!present.includes(c.file)) problems.push(`${label}/${c.file} is missing`);
    else if (readFileSync(join(folder, c.file), "utf8") !== c.text) problems.push(`${label}/${c.file} differs`);
  }
  for (const f of present) if (!configs.some((c) => c.file === f)) problems.push(`${label}/${f} should not exist`);
  return problems;
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(`usage: node envoy/generate.ts [--check]\n`);
    return 2;
  }
  const problems: string[] = [];
  for (const target of TARGETS) {
    const configs = await generateConfigs({ target });
    const outputs: Array<{ folder: string; label: string }> = [{ folder: join(generatedRoot, target), label: target }];
    if (target === "kubernetes") outputs.push({ folder: join(chartFilesRoot, "envoy"), label: "helm/shop/files/envoy" });
    for (const { folder, label } of outputs) {
      if (check) problems.push(...staleFiles(folder, configs, label));
      else {
        writeConfigs(folder, configs);
        process.stdout.write(`${relative(process.cwd(), folder) || folder}: ${configs.length} configs\n`);
      }
    }
  }
  const topology = readFileSync(topologyPath, "utf8");
  const topologyCopy = join(chartFilesRoot, "topology.json");
  if (check) {
    const copied = existsSync(topologyCopy) ? readFileSync(topologyCopy, "utf8") : undefined;
    if (copied !== topology) problems.push(`helm/shop/files/topology.json ${copied === undefined ? "is missing" : "differs from topology.json"}`);
  } else writeFileSync(topologyCopy, topology);
  if (problems.length > 0) {
    process.stderr.write(`envoy/generated or the chart's copies are stale (run 'make generate-envoy' and commit the result):\n  ${problems.join("\n  ")}\n`);
    return 1;
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
