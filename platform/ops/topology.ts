// The shape of the system as topology.json declares it: which services exist,
// their protobuf package, replicas and which services each may call. The
// operations console draws its map from it; the mesh runner, the Envoy
// generator and the chart read the same file.
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

/** Health, reflection and the mesh's own services: not part of the shop. */
export function isPlatformService(grpcService: string): boolean {
  return grpcService.startsWith("grpc.") || grpcService.startsWith("mesh.v1.");
}

function packageOf(grpcService: string): string {
  const dot = grpcService.lastIndexOf(".");
  return dot < 0 ? grpcService : grpcService.slice(0, dot);
}
