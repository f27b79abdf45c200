// The shape of the system as topology.json declares it: which services exist,
// their protobuf package, replicas and which services each may call. The
// operations console draws its map from it; the mesh runner, the Envoy
// generator, the chart and the contracts check read the same file, and the
// client factory refuses what it does not allow (callRefusal).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface TopologyService {
  /** Protobuf package of the service's contract: "shop.orders.v1". */
  readonly package: string;
  readonly replicas: number;
  readonly port: number;
  /** Services it may call synchronously (events are not calls). */
  readonly calls: readonly string[];
}

export interface Topology {
  readonly services: Readonly<Record<string, TopologyService>>;
  readonly edge?: { readonly port: number; readonly exposes: readonly string[] };
  /** The limits `make contracts-check` holds the call graph to (contracts/limits.ts has the defaults). */
  readonly contracts?: TopologyContractLimits;
}

/** Optional; each missing field takes its default (contracts/limits.ts). */
export interface TopologyContractLimits {
  /** Synchronous hops a path from the edge may have (edge → storefront → users is 2). */
  readonly maxDepth?: number;
  /** Tries of the last method of a path one call at the edge may cause, all retrying layers multiplied. */
  readonly maxAmplification?: number;
  /** What a caller must have left after its callee's deadline, to answer with the callee's failure. */
  readonly deadlineMarginMs?: number;
}

/** The repository's topology.json. */
export const defaultTopologyPath = fileURLToPath(new URL("../../topology.json", import.meta.url));

/** Reads and checks a topology file. Throws naming the file when it is malformed. */
export function loadTopology(path: string = defaultTopologyPath): Topology {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<Topology>;
  if (!parsed.services || typeof parsed.services !== "object") throw new Error(`${path}: no "services" object`);
  for (const [name, s] of Object.entries(parsed.services)) {
    if (typeof s.package !== "string" || !Array.isArray(s.calls)) throw new Error(`${path}: service ${name} needs "package" and "calls"`);
    for (const callee of s.calls) {
      if (!(callee in parsed.services)) throw new Error(`${path}: ${name} calls unknown service ${callee}`);
    }
  }
  return parsed as Topology;
}

/**
 * Names a fully qualified gRPC service ("shop.orders.v1.OrderService") by the
 * topology service whose package holds it ("orders"); the platform's own
 * services (health, reflection, mesh.v1) are "platform".
 */
export function createServiceNamer(topology: Topology): (grpcService: string) => string {
  const byPackage = Object.entries(topology.services).map(([name, s]) => ({ name, prefix: `${s.package}.` }));
  const cache = new Map<string, string>();
  return (grpcService) => {
    let name = cache.get(grpcService);
    if (name === undefined) {
      name = byPackage.find((p) => grpcService.startsWith(p.prefix))?.name ?? (isPlatformService(grpcService) ? "platform" : packageOf(grpcService));
      cache.set(grpcService, name);
    }
    return name;
  };
}

/**
 * Why `caller` may not call the service that serves `grpcService`, in the
 * words every refusal uses ("orders may not call users: topology.json lets
 * it call catalog"); undefined when the topology allows it. The platform's
 * own services (health, reflection, mesh.v1) are every service's to call. A
 * caller the topology does not name may call nothing of the shop, and a
 * service outside the topology's packages is nobody's to call.
 */
export function callRefusal(topology: Topology, caller: string, grpcService: string): string | undefined {
  if (isPlatformService(grpcService)) return undefined;
  const target = Object.entries(topology.services).find(([, s]) => grpcService.startsWith(`${s.package}.`))?.[0];
  const own = topology.services[caller];
  if (!own) return `${caller} may not call ${target ?? grpcService}: topology.json has no service ${caller}`;
  if (target === undefined) return `${caller} may not call ${grpcService}: no service of topology.json has package ${packageOf(grpcService)}`;
  if (own.calls.includes(target)) return undefined;
  return `${caller} may not call ${target}: topology.json lets it call ${own.calls.length > 0 ? own.calls.join(", ") : "no service"}`;
}

/** Health, reflection and the mesh's own services: not part of the shop. */
export function isPlatformService(grpcService: string): boolean {
  return grpcService.startsWith("grpc.") || grpcService.startsWith("mesh.v1.");
}

function packageOf(grpcService: string): string {
  const dot = grpcService.lastIndexOf(".");
  return dot < 0 ? grpcService : grpcService.slice(0, dot);
}
