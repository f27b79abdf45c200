// The contracts check's inputs for this repository's shop, read where
// everything else reads them: topology.json (platform's loadTopology), the
// descriptors in gen/ through the Envoy generator's own loader
// (envoy/contracts.ts), the services' code under services/, and the call
// deadlines the service modules declare (runner/services.ts, the modules
// the runners start). Nothing here is a second copy of any of them.
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTopology } from "@shop/platform";
import type { CallDeadline, ServiceModule, Topology } from "@shop/platform";
import { instanceAdminServices, loadServiceDescriptors } from "../envoy/contracts.ts";
import { allServices } from "../runner/services.ts";
import { checkContracts } from "./check.ts";
import type { ContractsInput, ContractsReport } from "./check.ts";
import { scanServiceSources } from "./source-scan.ts";

export const repositoryRoot = fileURLToPath(new URL("../", import.meta.url));
export const defaultServicesDir = fileURLToPath(new URL("../services/", import.meta.url));
const defaultTopologyFile = fileURLToPath(new URL("../topology.json", import.meta.url));

export interface ShopContractsOptions {
  /** A topology file. Default: the repository's topology.json. */
  topologyPath?: string;
  /** A topology already read (the running shop's); wins over topologyPath. */
  topology?: Topology;
  /** The folder of the services' code, one folder per topology service. Default: services/. */
  servicesDir?: string;
  /** Whose call deadlines count. Default: every module of the shop (runner/services.ts). */
  modules?: readonly ServiceModule[];
}

export async function loadShopContracts(options: ShopContractsOptions = {}): Promise<ContractsInput> {
  const topologyPath = options.topologyPath ?? defaultTopologyFile;
  const topology = options.topology ?? loadTopology(topologyPath);
  const descriptors = await loadServiceDescriptors(topology);
  const sources = await scanServiceSources({ servicesDir: options.servicesDir ?? defaultServicesDir, topology, descriptors, root: repositoryRoot });
  const callDeadlines = new Map<string, CallDeadline>();
  for (const m of options.modules ?? allServices) if (m.callDeadlineMs) callDeadlines.set(m.name, m.callDeadlineMs);
  return {
    topology,
    topologyFile: options.topology ? "topology.json" : relative(repositoryRoot, topologyPath) || topologyPath,
    descriptors,
    adminServices: instanceAdminServices,
    sources,
    callDeadlines,
  };
}

export async function checkShopContracts(options: ShopContractsOptions = {}): Promise<ContractsReport> {
  return checkContracts(await loadShopContracts(options));
}
