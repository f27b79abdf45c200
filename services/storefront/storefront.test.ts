import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { expect } from "chai";
import type { DescService } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createLogger, requireCaller, serve } from "@shop/platform";
import type { ServiceModule } from "@shop/platform";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import { StorefrontService } from "../../gen/shop/storefront/v1/storefront_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { startShop } from "../../runner/shop.ts";
import { startTestShop } from "../../test/support/shop.ts";
import { testAuthority } from "../../test/support/keys.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { seedProducts } from "../catalog/seed.ts";
import { storefront } from "./index.ts";
import { pickRecommendations, RECOMMENDATION_COUNT } from "./recommendations.ts";
import { SECTION_BUDGET_SHARE } from "./section.ts";
import { errorOf } from "../../test/support/errors.ts";

// The contract's deadlines for the two pages, and the slack a loaded test
// machine may add on top of them.
const PROFILE_PAGE_MS = 1500;
const PRODUCT_PAGE_MS = 1000;
const SLACK_MS = 250;
/** How long a "slow" stand-in takes: far past any section's share and any page's budget. */
const SLOW_MS = 5000;

type Dependency = "users" | "orders" | "catalog" | "inventory";
type Mode = "normal" | "slow" | "failing";

interface SeenCall {
  subject: string;
  kind: string;
  timeoutMs: number | undefined;
}

/**
 * Stand-ins for the four services the storefront calls, each a real module
 * served by the platform, whose behaviour a test sets per dependency.
 */
function createStandIns() {
  const modes: Record<Dependency, Mode> = { users: "normal", orders: "normal", catalog: "normal", inventory: "normal" };
  const seen: Record<Dependency, SeenCall[]> = { users: [], orders: [], catalog: [], inventory: [] };

  async function behave(dependency: Dependency, ctx: HandlerContext): Promise<void> {
    const caller = requireCaller();
    seen[dependency].push({ subject: caller.subject, kind: caller.kind, timeoutMs: ctx.timeoutMs() });
    if (modes[dependency] === "failing") throw new ConnectError(`${dependency} stand-in is down`, Code.Unavailable);
    // A slow handler that still honours its call's deadline: when the signal
    // aborts, it gives up with the signal's reason (DEADLINE_EXCEEDED), as a
    // well-behaved handler would.
    if (modes[dependency] === "slow") await delay(SLOW_MS, undefined, { signal: ctx.signal }).catch(() => ctx.signal.throwIfAborted());
  }

  // Methods a stand-in leaves out answer UNIMPLEMENTED through the platform.
  const standIn = <S extends DescService>(name: string, service: S, impl: Partial<ServiceImpl<S>>): ServiceModule => ({
    name,
    migrations: [],
    async start() {
      return { services: [serve(service, impl as ServiceImpl<S>)] };
    },
  });

  const product = (p: (typeof seedProducts)[number]) => ({
    sku: p.sku,
    name: p.name,
    description: p.description,
    category: p.category,
    price: { currencyCode: "EUR", unitsMinor: BigInt(p.priceMinor) },
  });

  const modules = [
    standIn("users-stand-in", UserService, {
      async getProfile(_req, ctx) {
        await behave("users", ctx);
        const id = requireCaller().subject;
        return { user: { id, email: `${id}@example.com`, displayName: "Stand-in User", createdAt: timestampFromDate(new Date()) } };
      },
    }),
    standIn("orders-stand-in", OrderService, {
      async listOrders(req, ctx) {
        await behave("orders", ctx);
        const userId = requireCaller().subject;
        const count = Math.min(req.pageSize || 20, 8);
        return {
          orders: Array.from({ length: count }, () => ({ orderId: randomUUID(), userId, status: OrderStatus.CONFIRMED })),
          nextPageToken: "more",
        };
      },
    }),
    standIn("catalog-stand-in", CatalogService, {
      async listProducts(req, ctx) {
        await behave("catalog", ctx);
        return { products: seedProducts.slice(0, req.pageSize || 20).map(product), nextPageToken: "" };
      },
      async getProduct(req, ctx) {
        await behave("catalog", ctx);
        const found = seedProducts.find((p) => p.sku === req.sku);
        if (!found) throw new ConnectError(`product ${req.sku} not found`, Code.NotFound);
        return { product: product(found) };
      },
    }),
    standIn("inventory-stand-in", InventoryService, {
      async getStock(req, ctx) {
        await behave("inventory", ctx);
        return { stock: { sku: req.sku, onHand: 10, reserved: 3, available: 7 } };
      },
    }),
  ];

  return {
    modules,
    modes,
    seen,
    reset() {
      for (const d of Object.keys(modes) as Dependency[]) {
        modes[d] = "normal";
        seen[d].length = 0;
      }
    },
  };
}

async function timed<T>(call: Promise<T>): Promise<{ result: T; elapsedMs: number }> {
  const started = performance.now();
  const result = await call;
  return { result, elapsedMs: performance.now() - started };
}

describe("storefront service", () => {
  const standIns = createStandIns();
  let t: TestShop;
  let userId: string;
  let userToken: { headers: { authorization: string } };

  before(async () => {
    t = await startTestShop([storefront, ...standIns.modules]);
    userId = randomUUID();
    userToken = t.as((await t.tokens.issueUserToken(userId)).token);
  });
  after(() => t.stop());
  beforeEach(() => standIns.reset());

  const client = () => t.client(StorefrontService);
  const profilePage = async () => {
    const { result, elapsedMs } = await timed(client().getProfilePage({}, userToken));
    return { page: result.page!, elapsedMs };
  };
  const productPage = async (sku: string) => {
    const { result, elapsedMs } = await timed(client().getProductPage({ sku }));
    return { page: result.page!, elapsedMs };
  };

  describe("GetProfilePage", () => {
    it("assembles user, five recent orders and four recommendations, none degraded, when every dependency is healthy", async () => {
      const { page } = await profilePage();
      expect(page.user?.status?.degraded).to.equal(false);
      expect(page.recentOrders?.status?.degraded).to.equal(false);
      expect(page.recommendations?.status?.degraded).to.equal(false);
      expect(page.user?.user?.id).to.equal(userId);
      expect(page.recentOrders?.orders).to.have.length(5);
      expect(page.recommendations?.products).to.have.length(RECOMMENDATION_COUNT);
      const catalogSkus = seedProducts.map((p) => p.sku);
      expect(catalogSkus).to.include.members(page.recommendations!.products.map((p) => p.sku));
    });

    it("forwards the user's own token: every dependency sees the caller's user id", async () => {
      await profilePage();
      for (const dependency of ["users", "orders", "catalog"] as const) {
        expect(standIns.seen[dependency], dependency).to.have.length(1);
        expect(standIns.seen[dependency][0], dependency).to.include({ kind: "user", subject: userId });
      }
    });

    it("gives each dependency call a share of the page budget as its deadline, not the whole of it", async () => {
      await profilePage();
      for (const dependency of ["users", "orders", "catalog"] as const) {
        const { timeoutMs } = standIns.seen[dependency][0];
        expect(timeoutMs, dependency).to.be.a("number");
        expect(timeoutMs!, dependency).to.be.greaterThan(PROFILE_PAGE_MS * SECTION_BUDGET_SHARE - 200);
        expect(timeoutMs!, dependency).to.be.at.most(PROFILE_PAGE_MS * SECTION_BUDGET_SHARE);
      }
    });

    const sectionOf = (page: Awaited<ReturnType<typeof profilePage>>["page"], dependency: Dependency) =>
      dependency === "users" ? page.user : dependency === "orders" ? page.recentOrders : page.recommendations;
    const isEmpty = (page: Awaited<ReturnType<typeof profilePage>>["page"], dependency: Dependency) =>
      dependency === "users" ? page.user?.user === undefined : dependency === "orders" ? page.recentOrders!.orders.length === 0 : page.recommendations!.products.length === 0;

    for (const dependency of ["users", "orders", "catalog"] as const) {
      const others = (["users", "orders", "catalog"] as const).filter((d) => d !== dependency);

      it(`degrades only the ${dependency} section when ${dependency} is slow, and answers within the page budget`, async () => {
        standIns.modes[dependency] = "slow";
        const { page, elapsedMs } = await profilePage();
        expect(elapsedMs).to.be.below(PROFILE_PAGE_MS + SLACK_MS);
        const section = sectionOf(page, dependency)!;
        expect(section.status?.degraded).to.equal(true);
        expect(section.status?.reason).to.match(new RegExp(`^${dependency}: DEADLINE_EXCEEDED`));
        expect(isEmpty(page, dependency)).to.equal(true);
        for (const other of others) {
          expect(sectionOf(page, other)!.status?.degraded, other).to.equal(false);
          expect(isEmpty(page, other), other).to.equal(false);
        }
      });

      it(`degrades only the ${dependency} section with UNAVAILABLE when ${dependency} fails`, async () => {
        standIns.modes[dependency] = "failing";
        const { page } = await profilePage();
        const section = sectionOf(page, dependency)!;
        expect(section.status?.degraded).to.equal(true);
        expect(section.status?.reason).to.equal(`${dependency}: UNAVAILABLE ${dependency} stand-in is down`);
        expect(isEmpty(page, dependency)).to.equal(true);
        for (const other of others) expect(sectionOf(page, other)!.status?.degraded, other).to.equal(false);
      });
    }

    it("still answers OK within its budget when every dependency is slow, with every section degraded", async () => {
      standIns.modes.users = standIns.modes.orders = standIns.modes.catalog = "slow";
      const { page, elapsedMs } = await profilePage();
      expect(elapsedMs).to.be.below(PROFILE_PAGE_MS + SLACK_MS);
      expect([page.user?.status?.degraded, page.recentOrders?.status?.degraded, page.recommendations?.status?.degraded]).to.deep.equal([true, true, true]);
    });

    it("answers UNAUTHENTICATED without a token and asks no dependency", async () => {
      expect((await errorOf(client().getProfilePage({}))).code).to.equal(Code.Unauthenticated);
      expect(standIns.seen.users).to.have.length(0);
    });
  });

  describe("GetProductPage", () => {
    it("shows the product and its stock to an anonymous caller when both dependencies are healthy", async () => {
      const { page } = await productPage("latte-mug");
      expect(page.product?.product?.name).to.equal("Latte Mug");
      expect(page.product?.status?.degraded).to.equal(false);
      expect(page.stock?.available).to.equal(7);
      expect(page.stock?.status?.degraded).to.equal(false);
    });

    it("answers NOT_FOUND for an unknown SKU at once, without waiting for a slow inventory", async () => {
      standIns.modes.inventory = "slow";
      const started = performance.now();
      const err = await errorOf(client().getProductPage({ sku: "no-such-product" }));
      expect(err.code).to.equal(Code.NotFound);
      expect(performance.now() - started).to.be.below(PRODUCT_PAGE_MS * SECTION_BUDGET_SHARE - 200);
    });

    it("shows the product with the stock degraded as UNAVAILABLE when inventory is down", async () => {
      standIns.modes.inventory = "failing";
      const { page } = await productPage("latte-mug");
      expect(page.product?.product?.sku).to.equal("latte-mug");
      expect(page.product?.status?.degraded).to.equal(false);
      expect(page.stock?.status?.degraded).to.equal(true);
      expect(page.stock?.status?.reason).to.equal("inventory: UNAVAILABLE inventory stand-in is down");
      expect(page.stock?.available).to.equal(0);
    });

    it("shows the product with the stock degraded as DEADLINE_EXCEEDED when inventory is slow, within the page budget", async () => {
      standIns.modes.inventory = "slow";
      const { page, elapsedMs } = await productPage("latte-mug");
      expect(elapsedMs).to.be.below(PRODUCT_PAGE_MS + SLACK_MS);
      expect(page.product?.product?.sku).to.equal("latte-mug");
      expect(page.stock?.status?.reason).to.match(/^inventory: DEADLINE_EXCEEDED/);
    });

    it("degrades the product section, not the page, when the catalog is slow or down", async () => {
      standIns.modes.catalog = "slow";
      const slow = await productPage("latte-mug");
      expect(slow.elapsedMs).to.be.below(PRODUCT_PAGE_MS + SLACK_MS);
      expect(slow.page.product?.product).to.equal(undefined);
      expect(slow.page.product?.status?.reason).to.match(/^catalog: DEADLINE_EXCEEDED/);
      expect(slow.page.stock?.available).to.equal(7);
      expect(slow.page.stock?.status?.degraded).to.equal(false);

      standIns.modes.catalog = "failing";
      const down = await productPage("latte-mug");
      expect(down.page.product?.status?.reason).to.equal("catalog: UNAVAILABLE catalog stand-in is down");
      expect(down.page.stock?.available).to.equal(7);
    });
  });
});

describe("storefront calling its dependencies over the network", () => {
  const standIns = createStandIns();
  let dependencies: TestShop;
  let front: Awaited<ReturnType<typeof startShop>>;

  before(async () => {
    dependencies = await startTestShop(standIns.modules);
    // A second server holding only the storefront: every dependency call
    // leaves it as gRPC over HTTP/2, with the deadline in grpc-timeout.
    front = await startShop({
      modules: [storefront],
      port: 0,
      host: "127.0.0.1",
      dataDir: ":memory:",
      remoteAddress: dependencies.url,
      tokens: testAuthority(),
      logger: createLogger({ level: "silent" }),
      drainTimeoutMs: 2000,
    });
  });
  after(async () => {
    await front?.stop();
    await dependencies?.stop();
  });

  beforeEach(() => standIns.reset());

  const profilePageAs = async (userId: string) => {
    const client = createClient(StorefrontService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${front.port}` }));
    const token = (await dependencies.tokens.issueUserToken(userId)).token;
    return timed(client.getProfilePage({}, { headers: { authorization: `Bearer ${token}` } }));
  };

  it("forwards the user's token to the other server and degrades a failing dependency there", async () => {
    standIns.modes.orders = "failing";
    const userId = randomUUID();
    const { result } = await profilePageAs(userId);
    expect(result.page?.user?.user?.id).to.equal(userId);
    for (const dependency of ["users", "orders", "catalog"] as const) {
      expect(standIns.seen[dependency][0], dependency).to.include({ kind: "user", subject: userId });
    }
    expect(result.page?.recentOrders?.status?.reason).to.equal("orders: UNAVAILABLE orders stand-in is down");
    expect(result.page?.recommendations?.products).to.have.length(RECOMMENDATION_COUNT);
  });

  it("sends each dependency its share of the budget in grpc-timeout", async () => {
    await profilePageAs(randomUUID());
    const { timeoutMs } = standIns.seen.users[0];
    expect(timeoutMs).to.be.a("number");
    expect(timeoutMs!).to.be.at.most(PROFILE_PAGE_MS * SECTION_BUDGET_SHARE);
  });

  // The dependency's server must survive the client resetting the stream
  // when its deadline passes (NGHTTP2_INTERNAL_ERROR from connect-node).
  it("degrades a slow dependency on the other server within the page budget", async () => {
    standIns.modes.orders = "slow";
    const userId = randomUUID();
    const { result, elapsedMs } = await profilePageAs(userId);
    expect(elapsedMs).to.be.below(PROFILE_PAGE_MS + SLACK_MS);
    expect(result.page?.user?.user?.id).to.equal(userId);
    expect(result.page?.recentOrders?.status?.reason).to.match(/^orders: DEADLINE_EXCEEDED/);
    expect(result.page?.recommendations?.products).to.have.length(RECOMMENDATION_COUNT);
  });
});

describe("recommendations", () => {
  const pool = Array.from({ length: 20 }, (_, i) => `p${i}`);

  it("picks four distinct products from the pool, the same ones all day for one user", () => {
    const morning = pickRecommendations(pool, "user-a", new Date("2026-05-04T08:00:00Z"));
    const evening = pickRecommendations(pool, "user-a", new Date("2026-05-04T20:00:00Z"));
    expect(morning).to.have.length(RECOMMENDATION_COUNT);
    expect(new Set(morning).size).to.equal(RECOMMENDATION_COUNT);
    expect(evening).to.deep.equal(morning);
  });

  it("rotates to other products the next day", () => {
    const today = pickRecommendations(pool, "user-a", new Date("2026-05-04T08:00:00Z"));
    const tomorrow = pickRecommendations(pool, "user-a", new Date("2026-05-05T08:00:00Z"));
    expect(tomorrow).to.not.deep.equal(today);
  });

  it("shows the whole pool when it is smaller than four", () => {
    expect(pickRecommendations(["a", "b"], "user-a")).to.deep.equal(["a", "b"]);
  });
});
