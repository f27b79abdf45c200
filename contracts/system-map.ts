// The call paths of the console's system map (mesh.v1.OpsService
// GetSystemMap): the contracts check's own paths, depth, amplification and
// deadline budgets, for the running shop's topology, as the check computes
// them for `make contracts-check`. Every instance computes the same answer
// from the same files, so a mesh-wide merge may take any instance's.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import type { GetSystemMapResponseSchema } from "../gen/mesh/v1/ops_pb.js";
import { checkShopContracts } from "./shop.ts";

export type SystemMapCallPaths = Pick<MessageInitShape<typeof GetSystemMapResponseSchema>, "callPaths" | "callPathLimits">;

export async function systemMapCallPaths(topology: Topology): Promise<SystemMapCallPaths> {
  const report = await checkShopContracts({ topology });
  return {
    callPaths: report.paths.map((p) => ({
      hops: p.hops.map((h) => ({ service: h.service, method: h.method, deadlineMs: h.deadlineMs ?? 0, budgetMs: h.budgetMs ?? 0, attempts: h.attempts })),
      depth: p.depth,
      amplification: p.amplification,
      violations: [...p.violations],
    })),
    callPathLimits: report.limits,
  };
}
