// The contracts check: topology.json's call graph and the contracts in the
// descriptors, held to the limits of limits.ts. It guarantees that a shop it
// passes has
//
//   - no cycle in the synchronous calls topology.json allows;
//   - no path from the edge deeper than maxDepth synchronous hops;
//   - no path on which one call at the edge may cause more than
//     maxAmplification tries of its last method (each hop: its caller's
//     proxy's tries, envoy/policy.ts, times the platform client's,
//     platform/clients.ts; the edge counts for the first hop);
//   - no call whose deadline leaves its caller less than deadlineMarginMs of
//     its own budget: the callee's contract deadline, cut to what its caller
//     has left and to the caller's own deadline for the call where its module
//     declares one (the storefront's sections);
//   - no method of the shop, or of the platform's admin services, without a
//     declared deadline, audience and idempotency level (the options are
//     present in the descriptor; their values are the contract's business);
//   - no client asked for in a service's code for a service topology.json
//     does not let it call, and none the check could not follow.
//
// Paths are method by method: a handler's callees come from its code
// (source-scan.ts) where the service's folder was read, otherwise every
// method of a callee the topology allows (the worst case). Health and
// reflection are exempt from the declarations: their protos are the gRPC
// project's, which cannot carry mesh.v1 options.
import { getOption, hasOption, isFieldSet } from "@bufbuild/protobuf";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { callRefusal, CLIENT_ATTEMPTS, contractOf } from "@shop/platform";
import type { CallDeadline, MethodContract, Topology } from "@shop/platform";
import { proxyAttempts } from "../envoy/policy.ts";
import { Audience, policy } from "../gen/mesh/v1/options_pb.js";
import { contractLimits } from "./limits.ts";
import type { ContractLimits } from "./limits.ts";
import type { ClientRequest, SourceFacts } from "./source-scan.ts";

export interface ContractsInput {
  topology: Topology;
  /** How messages name the topology. Default "topology.json". */
  topologyFile?: string;
  /** Each topology service's gRPC services (envoy/contracts.ts loadServiceDescriptors). */
  descriptors: ReadonlyMap<string, readonly DescService[]>;
  /** The platform's own services every instance serves, held to the same declarations (mesh.v1 admin). */
  adminServices?: readonly DescService[];
  /** What the services' code says (source-scan.ts). Default: nothing read, every allowed callee method assumed. */
  sources?: SourceFacts;
  /** Per topology service, the deadlines its handlers give their calls (ServiceModule.callDeadlineMs). */
  callDeadlines?: ReadonlyMap<string, CallDeadline>;
}

export type Rule = "cycle" | "depth" | "amplification" | "deadline" | "declared" | "client";

export interface Violation {
  readonly rule: Rule;
  readonly message: string;
}

export interface CallHop {
  /** The topology's name of the service called. */
  readonly service: string;
  /** "/shop.users.v1.UserService/GetProfile". */
  readonly method: string;
  /** The contract's deadline; undefined when it declares none. */
  readonly deadlineMs: number | undefined;
  /** The deadline this hop runs under on this path; undefined when nothing bounds it. */
  readonly budgetMs: number | undefined;
  /** When the caller's module gave the call a deadline of its own (a storefront section). */
  readonly callDeadlineMs: number | undefined;
  /** Tries of one call at this hop: its caller's proxy's times the platform client's (the edge's alone for the first hop). */
  readonly attempts: number;
}

export interface CallPath {
  /** From the edge's call to the last one. */
  readonly hops: readonly CallHop[];
  /** Synchronous hops from the edge. */
  readonly depth: number;
  /** Tries of the last method one call at the edge may cause: every hop's attempts multiplied. */
  readonly amplification: number;
  /** What breaks the limits on this path; empty when nothing does. */
  readonly violations: readonly string[];
}

export interface ContractsReport {
  readonly topologyFile: string;
  readonly limits: ContractLimits;
  readonly services: number;
  readonly methods: number;
  /** Every chain of calls from the edge, method by method, to a method that calls nothing more. */
  readonly paths: readonly CallPath[];
  /** Topology services no path from the edge reaches. */
  readonly unreached: readonly string[];
  readonly clients: readonly ClientRequest[];
  /** What the figures assume where the code could not tell, and calls made outside any handler. */
  readonly notes: readonly string[];
  readonly violations: readonly Violation[];
}

interface MethodNode {
  readonly service: string;
  readonly method: DescMethod;
  readonly contract: MethodContract;
}

export function checkContracts(input: ContractsInput): ContractsReport {
  const file = input.topologyFile ?? "topology.json";
  const { topology } = input;
  const limits = contractLimits(topology, file);
  const violations: Violation[] = [];
  const notes: string[] = [];
  const add = (rule: Rule, message: string) => {
    if (!violations.some((v) => v.rule === rule && v.message === message)) violations.push({ rule, message });
  };

  for (const cycle of callCycles(topology)) add("cycle", `a cycle in the synchronous calls ${file} allows: ${cycle.join(" → ")}`);

  // Declarations.
  const nodes = new Map<string, MethodNode[]>();
  let methods = 0;
  for (const [service, grpcServices] of input.descriptors) {
    const own: MethodNode[] = [];
    for (const s of grpcServices) for (const method of s.methods) own.push({ service, method, contract: contractOf(method) });
    nodes.set(service, own);
    methods += own.length;
  }
  const declared = [...[...nodes.values()].flat().map((n) => ({ method: n.method, owner: n.service })), ...(input.adminServices ?? []).flatMap((s) => s.methods.map((method) => ({ method, owner: "platform" })))];
  for (const { method, owner } of declared) {
    const missing = undeclared(method);
    if (missing.length > 0) add("declared", `${method.parent.typeName}/${method.name} (${owner}) declares no ${missing.join(", no ")}: nothing may default silently`);
  }

  // Clients in code.
  const clients = input.sources?.clients ?? [];
  for (const c of clients) {
    if (!c.service) {
      add("client", `${c.file}:${c.line}: ${c.caller} asks for a client of ${c.identifier}, which the check cannot follow to a generated service: import it from gen/ and pass it as it is`);
      continue;
    }
    const refusal = callRefusal(topology, c.caller, c.service.typeName);
    if (refusal) add("client", `${c.file}:${c.line}: ${refusal.replace("topology.json", file)}`);
  }
  for (const o of input.sources?.outsideHandlers ?? []) notes.push(`${o.file}:${o.line}: ${o.caller} calls ${short(o.method)} outside its handlers (not on a path from the edge)`);

  // The method graph.
  const callees = (from: MethodNode): MethodNode[] => {
    const allowed = topology.services[from.service]?.calls ?? [];
    const read = input.sources?.scanned.has(from.service) ?? false;
    const reached = input.sources?.reaches.get(from.contract.path);
    return allowed.flatMap((callee) => (nodes.get(callee) ?? []).filter((to) => !read || (reached?.has(to.contract.path) ?? false)));
  };
  for (const [service, s] of Object.entries(topology.services)) {
    if (s.calls.length > 0 && !(input.sources?.scanned.has(service) ?? false)) {
      notes.push(`no code of ${service} was read: each of its methods is taken to call every method of ${s.calls.join(", ")}`);
    }
  }

  // Paths from the edge.
  const paths: CallPath[] = [];
  const reachedServices = new Set<string>();
  const walk = (hops: CallHop[], onPath: MethodNode[]) => {
    const last = onPath[onPath.length - 1];
    const lastHop = hops[hops.length - 1];
    const next = callees(last).filter((to) => !onPath.includes(to));
    if (next.length === 0) {
      paths.push(finishPath(hops, limits));
      return;
    }
    for (const to of next) {
      const declaredDeadline = lastHop.budgetMs === undefined ? undefined : input.callDeadlines?.get(last.service)?.(last.method, to.method, lastHop.budgetMs);
      const budgetMs = minOf(to.contract.deadlineMs, declaredDeadline, lastHop.budgetMs);
      const hop: CallHop = {
        service: to.service,
        method: to.contract.path,
        deadlineMs: to.contract.deadlineMs,
        budgetMs,
        callDeadlineMs: declaredDeadline,
        attempts: proxyAttempts(to.contract) * CLIENT_ATTEMPTS,
      };
      reachedServices.add(to.service);
      walk([...hops, hop], [...onPath, to]);
    }
  };
  for (const exposed of topology.edge?.exposes ?? []) {
    reachedServices.add(exposed);
    for (const entry of nodes.get(exposed) ?? []) {
      walk([{ service: exposed, method: entry.contract.path, deadlineMs: entry.contract.deadlineMs, budgetMs: entry.contract.deadlineMs, callDeadlineMs: undefined, attempts: proxyAttempts(entry.contract) }], [entry]);
    }
  }
  paths.sort((a, b) => b.depth - a.depth || a.hops.map((h) => h.method).join().localeCompare(b.hops.map((h) => h.method).join()));

  // Limits, once per finding (several method paths share a service path).
  for (const path of paths) {
    const services = `edge → ${path.hops.map((h) => h.service).join(" → ")}`;
    if (path.depth > limits.maxDepth) {
      add("depth", `${services} is ${path.depth} synchronous hops deep (${methodChain(path)}); ${file} contracts.maxDepth is ${limits.maxDepth}`);
    }
    if (path.amplification > limits.maxAmplification) {
      const worst = Math.max(...paths.filter((p) => `edge → ${p.hops.map((h) => h.service).join(" → ")}` === services).map((p) => p.amplification));
      if (path.amplification === worst) {
        add(
          "amplification",
          `${services}: one call at the edge may try ${short(path.hops[path.hops.length - 1].method)} ${path.amplification} times (${path.hops.map((h) => h.attempts).join(" × ")}: ${methodChain(path)}); ${file} contracts.maxAmplification is ${limits.maxAmplification}`,
        );
      }
    }
    for (const message of deadlineFindings(path, limits)) add("deadline", message);
  }

  return {
    topologyFile: file,
    limits,
    services: Object.keys(topology.services).length,
    methods,
    paths,
    unreached: Object.keys(topology.services).filter((s) => !reachedServices.has(s)),
    clients,
    notes,
    violations,
  };
}

function finishPath(hops: CallHop[], limits: ContractLimits): CallPath {
  const depth = hops.length;
  const amplification = hops.reduce((product, h) => product * h.attempts, 1);
  const path = { hops, depth, amplification, violations: [] as string[] };
  if (depth > limits.maxDepth) path.violations.push(`${depth} synchronous hops; the limit is ${limits.maxDepth}`);
  if (amplification > limits.maxAmplification) path.violations.push(`${amplification} tries of ${short(hops[hops.length - 1].method)}; the limit is ${limits.maxAmplification}`);
  for (const finding of deadlineFindings(path, limits)) path.violations.push(finding);
  return path;
}

/** Each hop whose callee's budget leaves its caller less than the margin. */
function deadlineFindings(path: { hops: readonly CallHop[] }, limits: ContractLimits): string[] {
  const out: string[] = [];
  for (let i = 1; i < path.hops.length; i++) {
    const caller = path.hops[i - 1];
    const callee = path.hops[i];
    if (caller.budgetMs === undefined || callee.budgetMs === undefined) continue;
    if (caller.budgetMs >= callee.budgetMs + limits.deadlineMarginMs) continue;
    const given =
      callee.callDeadlineMs !== undefined
        ? `gives ${short(callee.method)} ${callee.callDeadlineMs} ms of its own`
        : `calls ${short(callee.method)} (deadline ${callee.deadlineMs} ms) with no deadline of its own`;
    out.push(
      `${short(caller.method)} has ${caller.budgetMs} ms and ${given}: ${callee.budgetMs} ms leaves it ${caller.budgetMs - callee.budgetMs} ms, under the ${limits.deadlineMarginMs} ms margin (contracts.deadlineMarginMs) to answer when the call runs out`,
    );
  }
  return out;
}

/** What a method does not declare: its deadline, audience (option (mesh.v1.policy)) and idempotency_level. */
function undeclared(method: DescMethod): string[] {
  const missing: string[] = [];
  const declared = hasOption(method, policy) ? getOption(method, policy) : undefined;
  if (!declared || declared.deadlineMs <= 0) missing.push("deadline (option (mesh.v1.policy).deadline_ms)");
  if (!declared || declared.audience === Audience.UNSPECIFIED) missing.push("audience (option (mesh.v1.policy).audience)");
  const options = method.proto.options;
  if (!options || !isFieldSet(options, MethodOptionsSchema.field.idempotencyLevel)) {
    missing.push("idempotency_level (NO_SIDE_EFFECTS, IDEMPOTENT, or IDEMPOTENCY_UNKNOWN where a repeat is unsafe)");
  }
  return missing;
}

/** Every cycle of topology calls, each once, starting at its first service in name order. */
export function callCycles(topology: Topology): string[][] {
  const found = new Map<string, string[]>();
  const visit = (service: string, stack: string[]) => {
    const at = stack.indexOf(service);
    if (at >= 0) {
      const cycle = stack.slice(at);
      const first = cycle.indexOf([...cycle].sort()[0]);
      const rotated = [...cycle.slice(first), ...cycle.slice(0, first)];
      found.set(rotated.join(">"), [...rotated, rotated[0]]);
      return;
    }
    for (const callee of topology.services[service]?.calls ?? []) visit(callee, [...stack, service]);
  };
  for (const service of Object.keys(topology.services).sort()) visit(service, []);
  return [...found.values()];
}

function minOf(...values: Array<number | undefined>): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : Math.min(...known);
}

/** "/shop.users.v1.UserService/GetProfile" as "UserService/GetProfile". */
export function short(path: string): string {
  const [service, method] = path.slice(1).split("/");
  return `${service.slice(service.lastIndexOf(".") + 1)}/${method}`;
}

function methodChain(path: CallPath): string {
  return path.hops.map((h) => short(h.method)).join(" → ");
}
