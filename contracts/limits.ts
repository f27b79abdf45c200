// The limits the contracts check holds the call graph to, from topology.json's
// optional "contracts" section; a field left out takes its default here, and
// anything else there (an unknown key, a number that is not a whole one of at
// least its minimum) is an error naming the file, never a silent default.
import type { Topology } from "@shop/platform";

export interface ContractLimits {
  /** Synchronous hops a path from the edge may have: edge → storefront → users is 2. */
  readonly maxDepth: number;
  /** Tries of a path's last method that one call at the edge may cause, every retrying layer multiplied. */
  readonly maxAmplification: number;
  /** Time a caller must have left after its callee's deadline, to answer with the callee's failure. */
  readonly deadlineMarginMs: number;
}

export const DEFAULT_LIMITS: ContractLimits = {
  // A page aggregator over the domain services, and no further: a third hop
  // adds its latency and its failures to every page above it.
  maxDepth: 2,
  // Three tries at each of two hops (Envoy's 1 + 2 retries where the
  // contract allows them): one more retrying hop, one more retry, or a client
  // that retries on its own goes over.
  maxAmplification: 9,
  // What the storefront's sections leave the page (30 % of 1000 ms is 300 ms)
  // is above it; a caller that hands its whole budget to its callee is not.
  deadlineMarginMs: 200,
};

const MINIMUM: Record<keyof ContractLimits, number> = { maxDepth: 1, maxAmplification: 1, deadlineMarginMs: 0 };

/** The topology's limits over the defaults. Throws naming the file and the field on anything malformed. */
export function contractLimits(topology: Topology, file = "topology.json"): ContractLimits {
  const declared: unknown = topology.contracts ?? {};
  if (typeof declared !== "object" || declared === null || Array.isArray(declared)) throw new Error(`${file}: "contracts" must be an object`);
  const limits: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(declared)) {
    if (key === "$comment") continue;
    if (!(key in MINIMUM)) throw new Error(`${file}: contracts.${key} is not a limit the check knows (${Object.keys(MINIMUM).join(", ")})`);
    const minimum = MINIMUM[key as keyof ContractLimits];
    if (typeof value !== "number" || !Number.isInteger(value) || value < minimum) {
      throw new Error(`${file}: contracts.${key} must be a whole number of at least ${minimum}, got ${JSON.stringify(value)}`);
    }
    limits[key] = value;
  }
  return limits as unknown as ContractLimits;
}
