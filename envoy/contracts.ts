// The gRPC services each topology service serves, read from the descriptors
// protoc-gen-es embeds in gen/, and what their contracts say per method.
// Nothing here is a second copy of the protos: a new method, deadline or
// idempotency level reaches the Envoy configs by regenerating.
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import { contractOf } from "@shop/platform";
import type { MethodContract, Topology } from "@shop/platform";
import { Health } from "../gen/health/v1/health_pb.js";
import { EventAdminService } from "../gen/mesh/v1/events_pb.js";
import { OpsService } from "../gen/mesh/v1/ops_pb.js";
import { ServerReflection as ReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

const genRoot = fileURLToPath(new URL("../gen/", import.meta.url));

/** Every instance serves these beside its own services (runner/shop.ts registers them). */
export const instanceAdminServices: readonly DescService[] = [EventAdminService, OpsService];
export const healthService: DescService = Health;
export const reflectionServices: readonly DescService[] = [ReflectionV1, ReflectionV1Alpha];

/**
 * What the edge routes, so what reflection through it may list (the edge
 * backend serves exactly these, with their files and imports, and nothing
 * else): the gRPC services of the topology's exposed services, health (Check
 * and List, with x-shop-service), the per-instance and mesh-wide admin
 * services, and reflection. A service the edge does not expose (payments) is
 * neither listed nor described: its symbols and files are NOT_FOUND.
 */
export function edgeServices(topology: Topology, descriptors: ReadonlyMap<string, readonly DescService[]>): DescService[] {
  const exposed = (topology.edge?.exposes ?? []).flatMap((name) => descriptors.get(name) ?? []);
  return [...exposed, healthService, ...instanceAdminServices, ...reflectionServices];
}

/**
 * The gRPC services of each topology service: those declared in the files of
 * its package (gen/shop/orders/v1/*_pb.js for "shop.orders.v1"), sorted by
 * name. Throws when a service has none, naming where it looked.
 */
export async function loadServiceDescriptors(topology: Topology): Promise<Map<string, DescService[]>> {
  const out = new Map<string, DescService[]>();
  for (const [name, s] of Object.entries(topology.services)) {
    // The package's folder and those below it: "shop.orders" takes shop.orders.v1 and
    // shop.orders.v2 side by side (README: versioning a contract).
    const folder = `${genRoot}${s.package.replaceAll(".", "/")}/`;
    let files: string[];
    try {
      files = (readdirSync(folder, { recursive: true }) as string[]).filter((f) => f.endsWith("_pb.js")).sort();
    } catch {
      files = [];
    }
    const services: DescService[] = [];
    for (const file of files) {
      const exports = (await import(pathToFileURL(`${folder}${file}`).href)) as Record<string, unknown>;
      for (const value of Object.values(exports)) {
        if (isFile(value)) services.push(...value.services.filter((svc) => svc.typeName.startsWith(`${s.package}.`)));
      }
    }
    if (services.length === 0) throw new Error(`topology.json: no gRPC service for ${name} (package ${s.package}) in ${folder}: run 'make generate'`);
    out.set(name, services.sort((a, b) => a.typeName.localeCompare(b.typeName)));
  }
  return out;
}

function isFile(value: unknown): value is DescFile {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "file";
}

/** What the contract says about every method of these services, in declaration order. */
export function methodContracts(services: readonly DescService[]): MethodContract[] {
  return services.flatMap((s) => s.methods.map(contractOf));
}
