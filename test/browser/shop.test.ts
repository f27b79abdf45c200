// The browser app in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against the real `make run` process: a shopper signs up,
// orders, watches the saga live and reads the notification; an operator
// opens the console and follows the order's trace down to its log lines.
// Screenshots land in test-results/screenshots/.
import { join } from "node:path";
import { expect } from "chai";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";
import { launchChromium, SCREENSHOTS } from "./chromium.ts";
import { ensureWebBuild } from "./web-build.ts";
import { testAuthority } from "../support/keys.ts";

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe("the browser app, in Chromium against make run", function () {
  this.timeout(60_000);
  let server: ServerProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const email = `ada-${Date.now()}@example.com`;
  let confirmedOrder: { id: string; traceId: string };
  /** What Chromium reported as blocked by the Content-Security-Policy, over the whole suite. */
  const cspViolations: string[] = [];

  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  const open = async (hash: string) => {
    const url = `${server.url}/${hash}`;
    // Going to the URL the page is already at changes no hash and would render nothing anew.
    if (page.url() === url) await page.reload();
    else await page.goto(url);
  };

  before(async function () {
    ensureWebBuild();
    server = await startServerProcess("runner/embedded.ts", { DATA_DIR: ":memory:", HOST: "127.0.0.1", LOG_LEVEL: "info" });
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });

  after(async function () {
    await browser?.close();
    await server?.stop();
  });

  it("serves the app at / as HTML that must be revalidated, and its hashed assets as immutable", async function () {
    const index = await fetch(`${server.url}/`);
    expect(index.status).to.equal(200);
    expect(index.headers.get("content-type")).to.equal("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).to.equal("no-cache");
    const html = await index.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script, "index.html loads a hashed script").to.be.a("string");
    const asset = await fetch(`${server.url}${script}`);
    expect(asset.headers.get("content-type")).to.equal("text/javascript; charset=utf-8");
    expect(asset.headers.get("cache-control")).to.equal("public, max-age=31536000, immutable");
    const again = await fetch(`${server.url}/`, { headers: { "if-none-match": index.headers.get("etag")! } });
    expect(again.status).to.equal(304);
    expect((await fetch(`${server.url}/../package.json`)).status).to.equal(404);
  });

  it("serves every page and asset with the security headers: a CSP that forbids framing, no referrer, nosniff", async function () {
    const index = await fetch(`${server.url}/`);
    const asset = await fetch(`${server.url}${/src="(\/assets\/[^"]+\.js)"/.exec(await index.text())![1]}`);
    for (const res of [index, asset]) {
      expect(res.headers.get("content-security-policy")).to.contain("frame-ancestors 'none'").and.to.contain("script-src 'self'").and.to.contain("default-src 'self'");
      expect(res.headers.get("referrer-policy")).to.equal("no-referrer");
      expect(res.headers.get("x-content-type-options")).to.equal("nosniff");
      expect(res.headers.get("x-frame-options")).to.equal("DENY");
    }
  });

  it("puts each validation error of a sign-up at its field", async function () {
    await open("#/signup");
    await page.fill("[name=email]", "not-an-email");
    await page.fill("[name=password]", "short");
    await page.fill("[name=display_name]", "Ada");
    await page.click("button[type=submit]");
    const emailError = page.locator('.field-error[data-field="email"]');
    await emailError.waitFor();
    expect(await emailError.textContent()).to.equal("must be a valid email address");
    expect(await page.locator('.field-error[data-field="password"]').textContent()).to.equal("must be at least 8 characters");
    expect(await page.getAttribute("[name=email]", "aria-invalid")).to.equal("true");
    // The error box next to them says it in words and names the code.
    expect(await page.locator(".error").first().getAttribute("data-code")).to.equal("INVALID_ARGUMENT");
    expect(await page.locator(".error strong").first().textContent()).to.equal("Some of what you entered is not valid.");
    await shot("signup-validation");
  });

  it("signs up, refuses a wrong password with its code in words, then logs in", async function () {
    await page.fill("[name=email]", email);
    await page.fill("[name=password]", "correct horse battery");
    await page.click("button[type=submit]");
    await page.waitForURL(/#\/login\?created=1/);
    expect(await page.inputValue("[name=email]")).to.equal(email);

    await page.fill("[name=password]", "wrong password!");
    await page.click("button[type=submit]");
    const error = page.locator('.error[data-code="UNAUTHENTICATED"]');
    await error.waitFor();
    expect(await error.textContent()).to.include("You are not logged in").and.include("UNAUTHENTICATED email or password is wrong");
    await shot("login-error");

    await page.fill("[name=password]", "correct horse battery");
    await page.click("button[type=submit]");
    await page.locator('[data-testid="who"]', { hasText: "Ada" }).waitFor();
  });

  it("searches the catalog, orders two products and watches the status reach CONFIRMED live", async function () {
    await open("#/");
    await page.locator('[data-testid="products"] [data-sku]').first().waitFor();
    await shot("catalog");
    await open("#/?q=grinder");
    await page.click('[data-sku="hand-grinder"] button');
    await open("#/?q=mug");
    await page.fill('[data-sku="latte-mug"] input[name=quantity]', "2");
    await page.click('[data-sku="latte-mug"] button');
    expect(await page.textContent('[data-testid="cart-count"]')).to.equal("3");

    await open("#/cart");
    await page.locator('[data-testid="cart-total"]', { hasText: "€111.00" }).waitFor();
    await shot("cart");
    const watched: string[] = [];
    page.on("request", (r) => watched.push(new URL(r.url()).pathname));
    // The order page follows the order through a server stream: no reload, no polling.
    await page.evaluate(() => ((window as unknown as { samePage: boolean }).samePage = true));
    await page.click('button:text-is("Place order")');
    await page.waitForURL(/#\/orders\/[0-9a-f-]{36}$/);
    await page.locator('[data-testid="status"][data-status="CONFIRMED"]').waitFor();
    expect(await page.evaluate(() => (window as unknown as { samePage?: boolean }).samePage)).to.equal(true);
    expect(watched).to.include("/shop.orders.v1.OrderService/WatchOrder");
    expect(watched).to.not.include("/shop.orders.v1.OrderService/GetOrder");
    expect(await page.textContent('[data-testid="outcome"]')).to.include("Your order is confirmed.");
    expect(await page.locator('[data-testid="timeline"] li').last().getAttribute("data-status")).to.equal("CONFIRMED");

    const id = UUID.exec(page.url())![0];
    const traceId = (await page.textContent('[data-testid="order-trace"]'))!.trim();
    expect(traceId).to.match(/^[0-9a-f]{32}$/);
    confirmedOrder = { id, traceId };
    await shot("order-confirmed");
  });

  it("shows the order's confirmation among the notifications", async function () {
    await open("#/notifications");
    // Notifications are written by the saga a moment after the order settles; the page refreshes itself.
    await page.locator('[data-testid="notification"]', { hasText: `Your order ${confirmedOrder.id.split("-")[0]} is confirmed` }).waitFor();
    await shot("notifications");
  });

  it("cancels an order for more than the stock, saying why", async function () {
    await open("#/?q=apron");
    await page.fill('[data-sku="barista-apron"] input[name=quantity]', "5");
    await page.click('[data-sku="barista-apron"] button');
    await open("#/cart");
    await page.click('button:text-is("Place order")');
    await page.waitForURL(/#\/orders\/[0-9a-f-]{36}$/);
    await page.locator('[data-testid="status"][data-status="CANCELLED"]').waitFor();
    expect(await page.textContent('[data-testid="cancel-reason"]')).to.equal("out of stock: barista-apron");
    await shot("order-cancelled");
  });

  it("lists both orders in the order history with their outcomes", async function () {
    await open("#/orders");
    const rows = page.locator('[data-testid="orders"] tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).to.equal(2);
    const statuses = await page.locator('[data-testid="orders"] [data-testid="status"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-status")));
    expect(statuses).to.have.members(["CONFIRMED", "CANCELLED"]);
    expect(await page.textContent('[data-testid="orders"]')).to.include("out of stock: barista-apron");
    await shot("orders");
  });

  it("shows the profile page with every section filled", async function () {
    await open("#/profile");
    await page.locator('[data-testid="profile-name"]', { hasText: "Ada" }).waitFor();
    expect(await page.locator('[data-testid="degraded"]').count()).to.equal(0);
    await shot("profile");
  });

  it("shows a section the storefront marks degraded as such, in place, with the rest of the page intact", async function () {
    // The storefront's own answer when the orders service misses its share of the deadline.
    await page.route("**/shop.storefront.v1.StorefrontService/GetProfilePage", (route) =>
      route.fulfill({
        status: 200,
        contentType: "application/json",
        body: JSON.stringify({
          page: {
            user: { user: { id: "u1", email, displayName: "Ada" }, status: {} },
            recentOrders: { status: { degraded: true, reason: "orders: DEADLINE_EXCEEDED deadline exceeded" } },
            recommendations: { products: [{ sku: "latte-mug", name: "Latte Mug", price: { currencyCode: "EUR", unitsMinor: "1600" } }], status: {} },
          },
        }),
      }),
    );
    try {
      await open("#/profile");
      const degraded = page.locator('[data-section="Recent orders"] [data-testid="degraded"]');
      await degraded.waitFor();
      expect(await degraded.textContent()).to.include("Recent orders cannot be shown right now.").and.include("orders: DEADLINE_EXCEEDED deadline exceeded");
      expect(await page.textContent('[data-testid="profile-name"]')).to.equal("Ada");
      expect(await page.locator('[data-section="Recommended for you"]').textContent()).to.include("Latte Mug");
      expect(await page.locator(".error").count(), "no error box: the page itself did not fail").to.equal(0);
      await shot("profile-degraded");
    } finally {
      await page.unroute("**/shop.storefront.v1.StorefrontService/GetProfilePage");
    }
  });

  it("says the shop cannot be reached, with a way to try again, when a call never gets an answer", async function () {
    await page.route("**/shop.catalog.v1.CatalogService/ListProducts", (route) => route.abort("connectionrefused"));
    try {
      await open("#/");
      const error = page.locator('.error[data-code="UNAVAILABLE"]');
      await error.waitFor();
      expect(await error.textContent()).to.include("The shop cannot be reached right now.");
      await shot("catalog-unreachable");
    } finally {
      await page.unroute("**/shop.catalog.v1.CatalogService/ListProducts");
    }
    await page.click('button:text-is("Try again")');
    await page.locator('[data-testid="products"] [data-sku]').first().waitFor();
  });

  it("asks for an operator token and refuses a bad one, saying so in words", async function () {
    await open("#/console");
    await page.fill("[name=token]", "not-a-token");
    await page.click('button:text-is("Open the console")');
    await page.locator('.error[data-code="UNAUTHENTICATED"]').waitFor();
    expect(await page.locator('[data-testid="token-form"]').count()).to.equal(1);
    await shot("console-token-refused");
  });

  it("shows every service of the topology SERVING, and per-method traffic", async function () {
    const token = await testAuthority().issueServiceToken("operator");
    await page.fill("[name=token]", token);
    await page.click('button:text-is("Open the console")');
    const rows = page.locator('[data-testid="system-map"] tbody tr');
    await rows.first().waitFor();
    const states = await rows.evaluateAll((els) => els.map((e) => [e.getAttribute("data-service"), e.getAttribute("data-state")]));
    expect(Object.fromEntries(states)).to.deep.equal({
      users: "SERVING",
      catalog: "SERVING",
      inventory: "SERVING",
      orders: "SERVING",
      payments: "SERVING",
      notifications: "SERVING",
      storefront: "SERVING",
    });
    // The contracts check's call paths under the map: depth, tries and each hop's deadline.
    const profilePath = page.locator('[data-testid="call-paths"] tr[data-path="/shop.storefront.v1.StorefrontService/GetProfilePage /shop.users.v1.UserService/GetProfile"]');
    await profilePath.waitFor();
    expect([await profilePath.getAttribute("data-depth"), await profilePath.getAttribute("data-amplification")]).to.deep.equal(["2", "9"]);
    expect(await profilePath.locator("td").nth(3).textContent()).to.equal("1500 ms → 1050 ms (of 2000)");
    await page.locator('[data-testid="method-stats"] tr[data-method="shop.orders.v1.OrderService/CreateOrder"]').waitFor();
    await page.locator('[data-testid="backlog"] tr[data-service="orders"]').waitFor();
    await page.locator('[data-testid="traces"] tbody tr[data-trace]').first().waitFor();
    await shot("console");
    await page.locator('[data-testid="system-map"]').screenshot({ path: join(SCREENSHOTS, "console-map.png") });
  });

  it("follows the order's trace from the order page to a waterfall across services and its log lines", async function () {
    await open(`#/orders/${confirmedOrder.id}`);
    await page.click('[data-testid="order-trace"]');
    await page.waitForURL(new RegExp(`#/console/trace/${confirmedOrder.traceId}$`));
    const waterfall = page.locator('[data-testid="waterfall"]');
    await waterfall.waitFor();
    expect(await page.textContent('[data-testid="trace-id"]')).to.equal(confirmedOrder.traceId);
    const services = await waterfall.locator(".wf-row").evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute("data-service")))]);
    expect(services).to.include.members(["orders", "catalog", "inventory", "payments", "notifications"]);

    // Down to the log lines: the CreateOrder span's own lines come first, its rpc line among them.
    await waterfall.locator(".wf-row", { hasText: "OrderService/CreateOrder" }).first().click();
    const rpcLine = page.locator('[data-testid="logs"] tbody tr.selected', { hasText: "rpc shop.orders.v1.OrderService/CreateOrder OK" });
    await rpcLine.waitFor();
    await rpcLine.locator("summary").click();
    expect(await rpcLine.locator("pre").textContent()).to.include(`"trace_id": "${confirmedOrder.traceId}"`);
    const sagaLines = await page.locator('[data-testid="logs"] tbody tr').count();
    expect(sagaLines, "lines of the saga's other steps carry the trace id too").to.be.greaterThan(1);
    await shot("console-trace");
  });

  it("goes back to the token form, saying why, when the operator's token stops working", async function () {
    await page.evaluate(() => sessionStorage.setItem("shop.operatorToken", "expired-or-revoked"));
    // The next live refresh is refused.
    const refused = page.locator('.error[data-code="UNAUTHENTICATED"]');
    await refused.waitFor();
    expect(await refused.textContent()).to.include("That operator token was not accepted");
    await page.locator('[data-testid="token-form"]').waitFor();
  });

  it("ran every page above under that policy without a single violation", function () {
    expect(cspViolations).to.deep.equal([]);
  });
});
