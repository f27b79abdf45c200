// `make contracts-check`: prints the contracts check's report for the shop and
// exits 1 when it found a violation (2 when its inputs could not be read), so
// `make test` stops on a call graph or a contract that breaks the rules in
// check.ts.
//
//   node contracts/cli.ts                          topology.json and services/
//   node contracts/cli.ts --topology <file>        another topology (its packages must be in gen/)
//   node contracts/cli.ts --services <folder>      another folder of service code
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatReport } from "./report.ts";
import { checkShopContracts } from "./shop.ts";

const { values } = parseArgs({ options: { topology: { type: "string" }, services: { type: "string" } }, strict: true });

try {
  const report = await checkShopContracts({
    topologyPath: values.topology === undefined ? undefined : resolve(values.topology),
    servicesDir: values.services === undefined ? undefined : resolve(values.services),
  });
  process.stdout.write(formatReport(report));
  process.exitCode = report.violations.length > 0 ? 1 : 0;
} catch (err) {
  process.stderr.write(`contracts check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
