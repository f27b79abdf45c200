// The contracts check (contracts/): the shop passes and its report shows the
// paths from the edge with their depth, tries and deadlines; each rule fails
// on a fixture made to break it (test/contracts/fixtures/), with that rule's
// message and no other; `make contracts-check`'s CLI exits 0 on the shop and
// 1 on a violation.
import { spawnSync } from "node:child_process";
import { expect } from "chai";
import { checkContracts } from "../../contracts/check.ts";
import type { ContractsReport, Rule } from "../../contracts/check.ts";
import { contractLimits, DEFAULT_LIMITS } from "../../contracts/limits.ts";
import { formatReport } from "../../contracts/report.ts";
import { checkShopContracts, loadShopContracts, repositoryRoot } from "../../contracts/shop.ts";
import { codeOnly } from "../../contracts/source-scan.ts";
import { fixtureInput, fixturePath } from "./fixtures/packages.ts";

const rules = (report: ContractsReport): Rule[] => [...new Set(report.violations.map((v) => v.rule))];
const messages = (report: ContractsReport, rule: Rule) => report.violations.filter((v) => v.rule === rule).map((v) => v.message);
const chain = (report: ContractsReport) => report.paths.map((p) => p.hops.map((h) => h.method.slice(h.method.lastIndexOf(".") + 1)).join(" > "));

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, ["contracts/cli.ts", ...args], { cwd: repositoryRoot, encoding: "utf8", timeout: 60_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe("contracts check", function () {
  describe("the shop", function () {
    let report: ContractsReport;
    before(async function () {
      report = await checkShopContracts();
    });

    it("passes: no cycle, no path deeper than 2, at most 9 tries, every deadline with room, everything declared, every client allowed", function () {
      expect(report.violations).to.deep.equal([]);
      expect(report.limits).to.deep.equal({ maxDepth: 2, maxAmplification: 9, deadlineMarginMs: 200 });
      expect(Math.max(...report.paths.map((p) => p.depth))).to.equal(2);
      expect(Math.max(...report.paths.map((p) => p.amplification))).to.equal(9);
      expect(report.unreached).to.deep.equal(["payments"]);
    });

    it("follows calls method by method from the code: only CreateOrder calls the catalog, so no page goes three hops deep", function () {
      const deep = chain(report).filter((c) => c.includes(" > "));
      expect(deep).to.have.members([
        "OrderService/CreateOrder > CatalogService/QuotePrice",
        "StorefrontService/GetProductPage > CatalogService/GetProduct",
        "StorefrontService/GetProductPage > InventoryService/GetStock",
        "StorefrontService/GetProfilePage > CatalogService/ListProducts",
        "StorefrontService/GetProfilePage > OrderService/ListOrders",
        "StorefrontService/GetProfilePage > UserService/GetProfile",
      ]);
      // storefront → orders → catalog is allowed by the topology, but ListOrders calls nobody.
      expect(chain(report)).to.include("OrderService/ListOrders");
    });

    it("reads the storefront's section deadlines from its module: 70 % of the page's budget", function () {
      const profile = report.paths.find((p) => p.hops.map((h) => h.method).join() === "/shop.storefront.v1.StorefrontService/GetProfilePage,/shop.users.v1.UserService/GetProfile")!;
      expect(profile.hops.map((h) => [h.deadlineMs, h.budgetMs, h.attempts])).to.deep.equal([
        [1500, 1500, 3],
        [2000, 1050, 3],
      ]);
      const product = report.paths.find((p) => p.hops[1]?.method === "/shop.inventory.v1.InventoryService/GetStock")!;
      expect(product.hops.map((h) => h.budgetMs)).to.deep.equal([1000, 700]);
    });

    it("does not amplify what is unsafe to repeat or a stream: SignUp and WatchOrder are tried once", function () {
      const once = report.paths.filter((p) => p.amplification === 1).map((p) => p.hops[0].method);
      expect(once).to.have.members(["/shop.users.v1.UserService/SignUp", "/shop.orders.v1.OrderService/WatchOrder"]);
    });

    it("prints the paths with depth, tries and deadline budgets, then the violations", function () {
      const text = formatReport(report);
      expect(text).to.include("limits: depth 2, amplification 9, deadline margin 200 ms");
      expect(text).to.include("depth 2  ×9  edge → StorefrontService/GetProfilePage 1500 ms ×3 → UserService/GetProfile 1050 ms (contract 2000) ×3");
      expect(text).to.include("depth 2  ×9  edge → OrderService/CreateOrder 5000 ms ×3 → CatalogService/QuotePrice 1000 ms ×3");
      expect(text).to.include("depth 1  ×3  edge → users: GetProfile 2000 ms ×3, Login 5000 ms ×3, SignUp 5000 ms ×1, UpdateProfile 3000 ms ×3");
      expect(text).to.include("not reached from the edge: payments");
      expect(text).to.match(/orders: CatalogService \(services\/orders\/index\.ts:\d+\)/);
      expect(text.trimEnd().endsWith("violations: none")).to.equal(true);
    });

    it("runs as `make contracts-check` does: exit 0 and the report on stdout", function () {
      const run = cli();
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.include("edge → StorefrontService/GetProfilePage 1500 ms ×3 → UserService/GetProfile 1050 ms (contract 2000) ×3");
      expect(run.stdout).to.include("violations: none");
    });
  });

  describe("each rule fails on a fixture made to break it", function () {
    it("cycle: a and b calling each other", function () {
      const report = checkContracts(fixtureInput("cycle.topology.json"));
      expect(rules(report)).to.deep.equal(["cycle"]);
      expect(messages(report, "cycle")).to.deep.equal(["a cycle in the synchronous calls cycle.topology.json allows: a → b → a"]);
    });

    it("cycle, through the CLI on the shop's own packages: exit 1 naming it", function () {
      const run = cli("--topology", "test/contracts/fixtures/shop-cycle.topology.json");
      expect(run.code, run.stderr).to.equal(1);
      expect(run.stdout).to.include("[cycle] a cycle in the synchronous calls test/contracts/fixtures/shop-cycle.topology.json allows: orders → storefront → orders");
      expect(run.stdout).to.match(/violations \(1\):/);
    });

    it("depth: edge → front → middle → back is 3 hops, over the default 2; configurable in the topology", function () {
      const input = fixtureInput("deep.topology.json");
      const report = checkContracts(input);
      expect(rules(report)).to.deep.equal(["depth"]);
      expect(messages(report, "depth")).to.deep.equal([
        "edge → front → middle → back is 3 synchronous hops deep (FrontService/Get → MiddleService/Get → BackService/Get); deep.topology.json contracts.maxDepth is 2",
      ]);
      expect(report.paths[0].violations).to.deep.equal(["3 synchronous hops; the limit is 2"]);
      const allowed = checkContracts({ ...input, topology: { ...input.topology, contracts: { maxDepth: 3 } } });
      expect(allowed.violations).to.deep.equal([]);
    });

    it("amplification: 3 tries at the edge × 3 at front's sidecar = 9 tries of back, over 4; the unretried Create makes 3", function () {
      const report = checkContracts(fixtureInput("amplified.topology.json"));
      expect(rules(report)).to.deep.equal(["amplification"]);
      expect(messages(report, "amplification")).to.deep.equal([
        "edge → front → back: one call at the edge may try BackService/Get 9 times (3 × 3: RetriedService/Get → BackService/Get); amplified.topology.json contracts.maxAmplification is 4",
      ]);
      expect(report.paths.map((p) => [p.hops[0].method, p.amplification])).to.deep.equal([
        ["/fixture.retried.v1.RetriedService/Create", 3],
        ["/fixture.retried.v1.RetriedService/Get", 9],
      ]);
    });

    it("deadline: a caller handing its whole budget to its callee, with no deadline of its own", function () {
      const report = checkContracts(fixtureInput("deadline.topology.json"));
      expect(rules(report)).to.deep.equal(["deadline"]);
      expect(messages(report, "deadline")).to.deep.equal([
        "HurriedService/Get has 1000 ms and calls SluggishService/Get (deadline 1000 ms) with no deadline of its own: 1000 ms leaves it 0 ms, under the 200 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
      ]);
    });

    it("deadline: the storefront's section budgets, read from its module, leave under a 500 ms margin", async function () {
      const report = await checkShopContracts({ topologyPath: fixturePath("storefront-margin.topology.json") });
      expect(rules(report)).to.deep.equal(["deadline"]);
      expect(messages(report, "deadline")).to.have.members([
        "StorefrontService/GetProductPage has 1000 ms and gives CatalogService/GetProduct 700 ms of its own: 700 ms leaves it 300 ms, under the 500 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
        "StorefrontService/GetProductPage has 1000 ms and gives InventoryService/GetStock 700 ms of its own: 700 ms leaves it 300 ms, under the 500 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
        "StorefrontService/GetProfilePage has 1500 ms and gives CatalogService/ListProducts 1050 ms of its own: 1050 ms leaves it 450 ms, under the 500 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
        "StorefrontService/GetProfilePage has 1500 ms and gives OrderService/ListOrders 1050 ms of its own: 1050 ms leaves it 450 ms, under the 500 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
        "StorefrontService/GetProfilePage has 1500 ms and gives UserService/GetProfile 1050 ms of its own: 1050 ms leaves it 450 ms, under the 500 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
      ]);
    });

    it("deadline: without the storefront's section deadlines, its pages would hand their whole budget on", async function () {
      const input = await loadShopContracts({ modules: [] });
      const report = checkContracts(input);
      expect(rules(report)).to.deep.equal(["deadline"]);
      expect(messages(report, "deadline")).to.include(
        "StorefrontService/GetProfilePage has 1500 ms and calls UserService/GetProfile (deadline 2000 ms) with no deadline of its own: 1500 ms leaves it 0 ms, under the 200 ms margin (contracts.deadlineMarginMs) to answer when the call runs out",
      );
    });

    it("declared: a method without a deadline, an audience or an idempotency level; IDEMPOTENCY_UNKNOWN counts as declared", function () {
      const report = checkContracts(fixtureInput("undeclared.topology.json"));
      expect(rules(report)).to.deep.equal(["declared"]);
      const idempotency = "idempotency_level (NO_SIDE_EFFECTS, IDEMPOTENT, or IDEMPOTENCY_UNKNOWN where a repeat is unsafe)";
      expect(messages(report, "declared")).to.deep.equal([
        `fixture.loose.v1.LooseService/NoIdempotency (loose) declares no ${idempotency}: nothing may default silently`,
        "fixture.loose.v1.LooseService/NoDeadline (loose) declares no deadline (option (mesh.v1.policy).deadline_ms): nothing may default silently",
        "fixture.loose.v1.LooseService/NoAudience (loose) declares no audience (option (mesh.v1.policy).audience): nothing may default silently",
        "fixture.loose.v1.LooseService/NoPolicy (loose) declares no deadline (option (mesh.v1.policy).deadline_ms), no audience (option (mesh.v1.policy).audience): nothing may default silently",
      ]);
    });

    it("client: code asking for a client the topology does not allow, or one the check cannot follow", async function () {
      const report = await checkShopContracts({ servicesDir: fixturePath("forbidden-client/services/") });
      expect(rules(report)).to.deep.equal(["client"]);
      expect(messages(report, "client")).to.deep.equal([
        "test/contracts/fixtures/forbidden-client/services/orders/client-of.ts:8: orders asks for a client of service, which the check cannot follow to a generated service: import it from gen/ and pass it as it is",
        "test/contracts/fixtures/forbidden-client/services/orders/index.ts:15: orders may not call users: topology.json lets it call catalog",
      ]);
      // The allowed one is listed, not refused; its call at start is on no path from the edge.
      expect(report.clients.filter((c) => c.service?.typeName === "shop.catalog.v1.CatalogService").map((c) => c.line)).to.deep.equal([14]);
      expect(report.notes).to.include("test/contracts/fixtures/forbidden-client/services/orders/index.ts:17: orders calls CatalogService/GetProduct outside its handlers (not on a path from the edge)");
    });
  });

  describe("configuration and reading code", function () {
    it("takes topology.json's contracts section over the defaults and refuses what it does not know", function () {
      const topology = { services: {} };
      expect(contractLimits(topology)).to.deep.equal(DEFAULT_LIMITS);
      expect(contractLimits({ ...topology, contracts: { maxDepth: 3 } })).to.deep.equal({ ...DEFAULT_LIMITS, maxDepth: 3 });
      expect(() => contractLimits({ ...topology, contracts: { maxDepht: 3 } as never })).to.throw("topology.json: contracts.maxDepht is not a limit the check knows (maxDepth, maxAmplification, deadlineMarginMs)");
      expect(() => contractLimits({ ...topology, contracts: { deadlineMarginMs: -1 } })).to.throw("contracts.deadlineMarginMs must be a whole number of at least 0, got -1");
    });

    it("reads code without its comments, strings and regular expressions, keeping lines", function () {
      const text = 'a.quotePrice(x); // b.getProfile(\nconst s = "c.listOrders(" + `d.getStock(${"e"})`;\nconst r = /f.getProduct\\(/;\n';
      const code = codeOnly(text);
      expect(code.length).to.equal(text.length);
      expect(code.split("\n").length).to.equal(text.split("\n").length);
      expect([...code.matchAll(/\.(\w+)\(/g)].map((m) => m[1])).to.deep.equal(["quotePrice"]);
    });
  });
});
