// The contracts at run time: an embedded shop refuses, at start, a module
// that asks for a client topology.json does not let it have, naming what the
// topology allows (the mesh's sidecars refuse the same call); the real shop
// still starts, and its console's system map carries the contracts check's
// call paths with depth, tries and deadline budgets.
import { expect } from "chai";
import type { DescService } from "@bufbuild/protobuf";
import { createLogger, loadTopology } from "@shop/platform";
import type { ServiceModule, Topology } from "@shop/platform";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { OpsService } from "../../gen/mesh/v1/ops_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { mergeSystemMaps } from "../../platform/ops/merge.ts";
import { startShop } from "../../runner/shop.ts";
import { allServices } from "../../runner/services.ts";
import { startTestShop } from "../support/shop.ts";
import type { TestShop } from "../support/shop.ts";
import { testAuthority } from "../support/keys.ts";

/** A module named `name` that asks for clients of these services in its start, as the shop's services do. */
function askingFor(name: string, ...services: DescService[]): ServiceModule {
  return {
    name,
    migrations: [],
    async start(ctx) {
      for (const s of services) ctx.clients.client(s);
      return { services: [] };
    },
  };
}

async function start(modules: ServiceModule[], topology?: Topology) {
  return startShop({ modules, topology, port: 0, host: "127.0.0.1", dataDir: ":memory:", tokens: testAuthority(), logger: createLogger({ level: "silent" }), drainTimeoutMs: 1000 });
}

async function refusal(modules: ServiceModule[], topology?: Topology): Promise<string> {
  try {
    const shop = await start(modules, topology);
    await shop.stop();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error("the shop started");
}

describe("clients the topology does not allow, refused at start", function () {
  it("orders asking for users: refused, naming what topology.json lets it call", async function () {
    expect(await refusal([askingFor("orders", CatalogService, UserService)])).to.equal("orders may not call users: topology.json lets it call catalog");
  });

  it("a service that may call nothing, and a caller topology.json does not know", async function () {
    expect(await refusal([askingFor("notifications", CatalogService)])).to.equal("notifications may not call catalog: topology.json lets it call no service");
    expect(await refusal([askingFor("intruder", UserService)])).to.equal("intruder may not call users: topology.json has no service intruder");
  });

  it("allows what the topology allows, and the platform's own services to anyone", async function () {
    const shop = await start([askingFor("orders", CatalogService, OpsService), askingFor("notifications", OpsService)]);
    await shop.stop();
  });

  it("follows the topology the shop is given: one that lets orders call users starts", async function () {
    const shopTopology = loadTopology();
    const topology: Topology = { ...shopTopology, services: { ...shopTopology.services, orders: { ...shopTopology.services.orders, calls: ["catalog", "users"] } } };
    const shop = await start([askingFor("orders", CatalogService, UserService)], topology);
    await shop.stop();
  });
});

describe("the real shop under the topology's refusals", function () {
  let t: TestShop;
  before(async function () {
    t = await startTestShop(allServices);
  });
  after(async function () {
    await t?.stop();
  });

  it("starts, and its system map carries every call path from the edge with depth, tries and deadlines", async function () {
    const token = await t.tokens.issueServiceToken("operator");
    const map = await t.client(OpsService).getSystemMap({}, t.as(token));
    expect(map.callPathLimits).to.include({ maxDepth: 2, maxAmplification: 9, deadlineMarginMs: 200 });
    const profile = map.callPaths.find((p) => p.hops.map((h) => h.method).join() === "/shop.storefront.v1.StorefrontService/GetProfilePage,/shop.users.v1.UserService/GetProfile");
    expect(profile, "storefront → users").to.not.equal(undefined);
    expect(profile!).to.include({ depth: 2, amplification: 9 });
    expect(profile!.violations).to.deep.equal([]);
    expect(profile!.hops.map((h) => [h.service, h.deadlineMs, h.budgetMs, h.attempts])).to.deep.equal([
      ["storefront", 1500, 1500, 3],
      ["users", 2000, 1050, 3],
    ]);
    expect(map.callPaths[0].depth, "deepest first").to.equal(2);
    expect(map.callPaths.every((p) => p.violations.length === 0)).to.equal(true);

    // The mesh-wide merge keeps the paths, from whichever instance has them.
    const merged = mergeSystemMaps([{ ...map, callPaths: [], callPathLimits: undefined }, map]);
    expect(merged.callPaths).to.have.length(map.callPaths.length);
    expect(merged.callPathLimits).to.equal(map.callPathLimits);
  });
});
