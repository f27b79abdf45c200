// The contracts check's report as a person reads it: the limits, every path
// from the edge with its depth, retry amplification and the deadline each hop
// runs under, then the violations. One-hop paths of a service share a line.
// The text states every figure the check judged, so a failure can be read
// without the code.
import type { CallHop, CallPath, ContractsReport } from "./check.ts";
import { short } from "./check.ts";

export function formatReport(report: ContractsReport): string {
  const { limits } = report;
  const lines: string[] = [
    `contracts check: ${report.topologyFile}, ${report.services} services, ${report.methods} methods; limits: depth ${limits.maxDepth}, amplification ${limits.maxAmplification}, deadline margin ${limits.deadlineMarginMs} ms`,
    "",
    "paths from the edge (depth: synchronous hops; ×n: tries, the caller's proxy's times the platform client's, multiplied along the path; ms: the deadline the hop runs under)",
  ];
  const deep = report.paths.filter((p) => p.depth > 1);
  for (const path of deep) lines.push(`  depth ${path.depth}  ×${path.amplification}  edge → ${path.hops.map(hopText).join(" → ")}${flag(path)}`);
  const oneHop = new Map<string, CallPath[]>();
  for (const path of report.paths.filter((p) => p.depth === 1)) oneHop.set(path.hops[0].service, [...(oneHop.get(path.hops[0].service) ?? []), path]);
  for (const [service, paths] of oneHop) {
    const worst = Math.max(...paths.map((p) => p.amplification));
    lines.push(`  depth 1  ×${worst}  edge → ${service}: ${paths.map((p) => `${methodName(p.hops[0].method)} ${ms(p.hops[0].budgetMs)} ×${p.hops[0].attempts}${flag(p)}`).join(", ")}`);
  }
  if (report.paths.length === 0) lines.push("  none: the topology exposes nothing at the edge");
  if (report.unreached.length > 0) lines.push(`not reached from the edge: ${report.unreached.join(", ")}`);

  const byCaller = new Map<string, string[]>();
  for (const c of report.clients) {
    const target = c.service ? c.service.typeName.slice(c.service.typeName.lastIndexOf(".") + 1) : `${c.identifier} (not followed)`;
    byCaller.set(c.caller, [...(byCaller.get(c.caller) ?? []), `${target} (${c.file}:${c.line})`]);
  }
  if (byCaller.size > 0) {
    lines.push("clients asked for in code:");
    for (const [caller, targets] of byCaller) lines.push(`  ${caller}: ${targets.join(", ")}`);
  }
  for (const note of report.notes) lines.push(`note: ${note}`);

  lines.push("");
  if (report.violations.length === 0) {
    lines.push("violations: none");
  } else {
    lines.push(`violations (${report.violations.length}):`);
    for (const v of report.violations) lines.push(`  [${v.rule}] ${v.message}`);
  }
  return `${lines.join("\n")}\n`;
}

function hopText(hop: CallHop): string {
  const cut = hop.deadlineMs !== undefined && hop.budgetMs !== undefined && hop.budgetMs < hop.deadlineMs ? ` (contract ${hop.deadlineMs})` : "";
  return `${short(hop.method)} ${ms(hop.budgetMs)}${cut} ×${hop.attempts}`;
}

function methodName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function ms(value: number | undefined): string {
  return value === undefined ? "no deadline" : `${value} ms`;
}

function flag(path: CallPath): string {
  return path.violations.length > 0 ? "  ← over a limit" : "";
}
