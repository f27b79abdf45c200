// What a browser gets from the mesh's edge (mesh.test.ts runs this suite on
// its mesh, before stopping it): the web app at /, as `make run` serves it,
// and the operations console's RPCs for the whole mesh, answered by the edge
// backend from every instance (runner/instance.ts edge-backend).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { expect } from "chai";
import { Client as PgClient } from "pg";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import type { Browser } from "playwright-core";
import { loadTopology } from "@shop/platform";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { OpsService, ServingState } from "../../gen/mesh/v1/ops_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { launchChromium, SCREENSHOTS } from "../browser/chromium.ts";
import { ensureWebBuild } from "../browser/web-build.ts";
import { repoRoot } from "../support/process.ts";
import { authorityFromKeyDir } from "../support/keys.ts";
import { identityDir } from "../../runner/mesh-certs.ts";
import type { LocalMesh } from "./local-mesh.ts";

const failure = (call: Promise<unknown>) =>
  call.then(
    () => expect.fail("expected the call to fail"),
    (err: unknown) => ConnectError.from(err),
  );

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function edgeWebAndConsoleSuite(getMesh: () => LocalMesh): void {
  describe("the web app and the operations console through the edge", function () {
    const topology = loadTopology();
    const services = Object.keys(topology.services);
    let mesh: LocalMesh;
    let grpc: <S extends DescService>(service: S) => Client<S>;
    let operator: { headers: { authorization: string } };
    /** The trace of an order placed through the edge. */
    let orderTraceId = "";

    before(async function () {
      this.timeout(180_000);
      mesh = getMesh();
      ensureWebBuild();
      const transport = createGrpcTransport({ baseUrl: mesh.edgeUrl });
      grpc = (service) => createClient(service, transport);
      operator = { headers: { authorization: `Bearer ${await authorityFromKeyDir(join(mesh.dir, "keys")).issueServiceToken("operator")}` } };
    });

    it("serves the app's index.html at / as HTML to revalidate, its hashed assets as immutable, from the edge backend", async function () {
      const index = await fetch(`${mesh.edgeUrl}/`);
      expect(index.status).to.equal(200);
      expect(index.headers.get("content-type")).to.equal("text/html; charset=utf-8");
      expect(index.headers.get("cache-control")).to.equal("no-cache");
      const html = await index.text();
      expect(html).to.equal(readFileSync(join(repoRoot, "web/dist/index.html"), "utf8"));
      expect((await fetch(`${mesh.edgeUrl}/index.html`).then((r) => r.text()))).to.equal(html);
      const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, "index.html loads a hashed script").to.be.a("string");
      const asset = await fetch(`${mesh.edgeUrl}${script}`);
      expect(asset.status).to.equal(200);
      expect(asset.headers.get("content-type")).to.equal("text/javascript; charset=utf-8");
      expect(asset.headers.get("cache-control")).to.equal("public, max-age=31536000, immutable");
      expect(Buffer.from(await asset.arrayBuffer()).equals(readFileSync(join(repoRoot, "web/dist", script!)))).to.equal(true);
      const again = await fetch(`${mesh.edgeUrl}/`, { headers: { "if-none-match": index.headers.get("etag")! } });
      expect(again.status).to.equal(304);
      // What is neither a file of the app nor an RPC: not found; the backend's own endpoints stay hidden.
      for (const path of ["/assets/no-such-file.js", "/../package.json", "/metrics", "/healthz"]) {
        expect((await fetch(`${mesh.edgeUrl}${path}`)).status, path).to.equal(404);
      }
      // Access logs reach their files within a second.
      const edgeLine = await until("the edge's access log line of the asset", async () => mesh.logLines("edge").find((l) => l.path === script));
      expect(edgeLine.upstream_cluster, "the edge backend's cluster").to.equal("reflection");
    });

    it("refuses the console's RPCs at the edge backend without an operator's token", async function () {
      expect((await failure(grpc(OpsService).getSystemMap({}))).code).to.equal(Code.Unauthenticated);
      const shopper = (await authorityFromKeyDir(join(mesh.dir, "keys")).issueUserToken("u-1")).token;
      const err = await failure(grpc(EventAdminService).getEventBacklog({}, { headers: { authorization: `Bearer ${shopper}` } }));
      expect(err.code).to.equal(Code.PermissionDenied);
      // Refused by the edge backend itself, which asked no instance.
      const refusal = await until("the edge backend's rpc line of the refusal", async () =>
        mesh.logLines("edge-backend").find((l) => l.msg === "rpc" && l.method === "GetEventBacklog" && l.code === "PERMISSION_DENIED"),
      );
      expect(refusal).to.include({ service: "mesh.v1.EventAdminService", instance: "edge-backend" });
      for (const i of mesh.state.instances) {
        expect(mesh.logLines(i.name).filter((l) => l.method === "GetEventBacklog" && l.code !== "OK"), i.name).to.deep.equal([]);
      }
    });

    it("maps the whole mesh without x-shop-service: every service SERVING, from every replica", async function () {
      // Connect JSON over HTTP/1.1, as the console in a browser asks.
      const ops = createClient(OpsService, createConnectTransport({ baseUrl: mesh.edgeUrl, httpVersion: "1.1" }));
      const map = await ops.getSystemMap({}, operator);
      expect(map.instances.map((i) => i.id).sort()).to.deep.equal(mesh.state.instances.map((i) => i.name).sort());
      expect(Object.fromEntries(map.services.map((s) => [s.name, ServingState[s.state]]))).to.deep.equal(Object.fromEntries(services.map((s) => [s, "SERVING"])));
      for (const service of ["catalog", "inventory", "orders"]) {
        const node = map.services.find((s) => s.name === service)!;
        expect([...new Set(node.grpcServices.map((g) => g.instance))].sort(), service).to.deep.equal([`${service}-0`, `${service}-1`]);
      }
      // The contracts check's call paths, computed by every instance alike, merged once.
      const profile = map.callPaths.find((p) => p.hops.map((h) => h.method).join() === "/shop.storefront.v1.StorefrontService/GetProfilePage,/shop.users.v1.UserService/GetProfile");
      expect([profile?.depth, profile?.amplification, profile?.hops.map((h) => h.budgetMs)]).to.deep.equal([2, 9, [1500, 1050]]);
      expect(map.callPathLimits).to.include({ maxDepth: 2, maxAmplification: 9 });
      // x-shop-service still means one instance of that service.
      const one = await grpc(OpsService).getSystemMap({}, { headers: { ...operator.headers, "x-shop-service": "catalog" } });
      expect(one.instances.map((i) => i.id)).to.have.length(1).and.to.satisfy((ids: string[]) => ids[0].startsWith("catalog-"));
    });

    it("lists the trace of an order placed through the edge, with spans from orders and catalog instances", async function () {
      const traceId = randomBytes(16).toString("hex");
      const email = `console-${randomUUID().slice(0, 8)}@example.com`;
      await grpc(UserService).signUp({ email, password: "a-long-password", displayName: "Console" });
      const { token } = await grpc(UserService).login({ email, password: "a-long-password" });
      await grpc(OrderService).createOrder(
        { idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" },
        { headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` } },
      );
      const summary = await until("the order's trace in ListRecentTraces", async () => {
        const { traces } = await grpc(OpsService).listRecentTraces({ pageSize: 100 }, operator);
        return traces.find((t) => t.traceId === traceId && t.services.includes("catalog"));
      });
      expect(summary.rootName).to.equal("shop.orders.v1.OrderService/CreateOrder");
      expect(summary.rootService).to.equal("orders");
      expect(summary.services.slice(0, 2)).to.deep.equal(["orders", "catalog"]);
      const { spans } = await grpc(OpsService).getTrace({ traceId }, operator);
      const instances = [...new Set(spans.map((s) => s.instance))];
      expect(instances.some((i) => /^orders-[01]$/.test(i)), instances.join(", ")).to.equal(true);
      expect(instances.some((i) => /^catalog-[01]$/.test(i)), instances.join(", ")).to.equal(true);
      const quote = spans.find((s) => s.name === "shop.catalog.v1.CatalogService/QuotePrice" && s.service === "catalog")!;
      const caller = spans.find((s) => s.spanId === quote.parentSpanId)!;
      expect(caller.service, "catalog's span hangs under the orders instance's client span").to.equal("orders");
      // The log lines of the trace, from the instances that wrote them.
      const { lines } = await grpc(OpsService).listLogLines({ traceId, pageSize: 500 }, operator);
      const rpcLines = lines.filter((l) => l.message === "rpc").map((l) => `${l.instance} ${(JSON.parse(l.json) as { method: string }).method}`);
      expect(rpcLines.some((l) => /^orders-[01] CreateOrder$/.test(l)), rpcLines.join(", ")).to.equal(true);
      expect(rpcLines.some((l) => /^catalog-[01] QuotePrice$/.test(l)), rpcLines.join(", ")).to.equal(true);
      orderTraceId = traceId;
    });

    describe("events across the mesh", function () {
      const eventId = `edge-test-${randomUUID()}`;
      let orders: PgClient;

      before(async function () {
        // A dead letter of the orders consumer, in the database both orders replicas share.
        orders = new PgClient({ connectionString: mesh.databaseUrls.orders });
        await orders.connect();
        const now = new Date().toISOString();
        await orders.query(
          "INSERT INTO event_inbox (consumer, event_id, type, payload, headers, occurred_at, source, status, attempts, next_attempt_at, last_error, received_at) VALUES ('orders', $1, 'mesh.testing.v1.Planted', $2, '{}', $3, 'edge-test', 'dead', 5, 0, 'planted', $4)",
          [eventId, Buffer.alloc(0), now, Date.now()],
        );
        await orders.query(
          "INSERT INTO event_dead_letters (consumer, event_id, type, source, payload, error, attempts, failed_at) VALUES ('orders', $1, 'mesh.testing.v1.Planted', 'edge-test', $2, 'planted by the edge test', 5, $3)",
          [eventId, Buffer.alloc(0), now],
        );
      });
      after(async function () {
        await orders?.end();
      });

      it("lists a dead letter once though both orders replicas report it, and counts it once in the backlog", async function () {
        const { deadLetters } = await grpc(EventAdminService).listDeadLetters({}, operator);
        expect(deadLetters.filter((d) => d.eventId === eventId).map((d) => [d.consumer, d.error])).to.deep.equal([["orders", "planted by the edge test"]]);
        // Each replica, asked alone through its sidecar as the edge backend asks it (mTLS with the
        // edge backend's certificate), holds it too; asked past its sidecar, it refuses.
        const tls = identityDir(join(mesh.dir, "certs"), "edge-backend");
        const [cert, key, ca] = ["tls.crt", "tls.key", "ca.crt"].map((f) => readFileSync(join(tls, f)));
        for (const i of mesh.state.instances.filter((x) => x.service === "orders")) {
          const own = createClient(
            EventAdminService,
            // The sidecar's certificate names a SPIFFE ID, not 127.0.0.1; the chain is still checked against the mesh CA.
            createGrpcTransport({ baseUrl: `https://127.0.0.1:${i.ports.inbound}`, nodeOptions: { cert, key, ca, checkServerIdentity: () => undefined } }),
          );
          expect((await own.listDeadLetters({}, operator)).deadLetters.map((d) => d.eventId), i.name).to.include(eventId);
          const bypass = createClient(EventAdminService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${i.ports.app}` }));
          expect((await failure(bypass.listDeadLetters({}, operator))).code, `${i.name} past its sidecar`).to.equal(Code.PermissionDenied);
        }
        const backlog = await grpc(EventAdminService).getEventBacklog({}, operator);
        const consumers = backlog.consumers.map((c) => c.consumer);
        expect(consumers, "one row per consumer").to.deep.equal([...new Set(consumers)]);
        expect(backlog.consumers.find((c) => c.consumer === "orders")?.dead).to.equal(1);
        expect(backlog.sources.map((s) => s.source).sort()).to.deep.equal([...new Set(backlog.sources.map((s) => s.source))].sort());
        expect(backlog.sources.map((s) => s.source)).to.include.members(["orders", "inventory", "payments"]);
      });

      it("retries a dead letter at an instance of its consumer, which handles it; a second retry finds none", async function () {
        await grpc(EventAdminService).retryDeadLetter({ consumer: "orders", eventId }, operator);
        await until("the retried event to be handled", async () => {
          const { rows } = await orders.query<{ status: string }>("SELECT status FROM event_inbox WHERE consumer = 'orders' AND event_id = $1", [eventId]);
          return rows[0]?.status === "handled" ? true : undefined;
        });
        expect((await grpc(EventAdminService).listDeadLetters({ consumer: "orders" }, operator)).deadLetters.map((d) => d.eventId)).to.not.include(eventId);
        const again = await failure(grpc(EventAdminService).retryDeadLetter({ consumer: "orders", eventId }, operator));
        expect(again.code).to.equal(Code.NotFound);
        expect(again.rawMessage).to.match(new RegExp(`^orders-[01]: no dead letter ${eventId} for orders$`));
        const nobody = await failure(grpc(EventAdminService).retryDeadLetter({ consumer: "no-such-consumer", eventId }, operator));
        expect(nobody.code).to.equal(Code.NotFound);
        expect(nobody.rawMessage).to.contain("no instance runs the consumer no-such-consumer");
      });
    });

    describe("in Chromium", function () {
      let browser: Browser | undefined;
      after(async function () {
        await browser?.close();
      });

      it("opens the console from the edge and shows every service of the topology SERVING, from the whole mesh", async function () {
        this.timeout(60_000);
        browser = await launchChromium();
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        context.setDefaultTimeout(15_000);
        const page = await context.newPage();
        const asked: string[] = [];
        page.on("request", (r) => asked.push(new URL(r.url()).pathname));
        await page.goto(`${mesh.edgeUrl}/#/console`);
        await page.fill("[name=token]", operator.headers.authorization.slice("Bearer ".length));
        await page.click('button:text-is("Open the console")');
        const rows = page.locator('[data-testid="system-map"] tbody tr');
        await rows.first().waitFor();
        const states = await rows.evaluateAll((els) => els.map((e) => [e.getAttribute("data-service"), e.getAttribute("data-state")]));
        expect(Object.fromEntries(states)).to.deep.equal(Object.fromEntries(services.map((s) => [s, "SERVING"])));
        await page.locator('[data-testid="backlog"] tr[data-service="orders"]').waitFor();
        await page.locator('[data-testid="traces"] tbody tr[data-trace]').first().waitFor();
        expect(asked).to.include("/mesh.v1.OpsService/GetSystemMap");
        await page.screenshot({ path: join(SCREENSHOTS, "mesh-console.png"), fullPage: true });

        // The order's trace as a waterfall across the processes of the mesh, with their log lines.
        expect(orderTraceId, "an order's trace from the test before").to.match(/^[0-9a-f]{32}$/);
        await page.goto(`${mesh.edgeUrl}/#/console/trace/${orderTraceId}`);
        const waterfall = page.locator('[data-testid="waterfall"]');
        await waterfall.waitFor();
        const shown = await waterfall.locator(".wf-row").evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute("data-service")))]);
        expect(shown).to.include.members(["orders", "catalog"]);
        await page.locator('[data-testid="logs"] tbody tr').first().waitFor();
        await page.screenshot({ path: join(SCREENSHOTS, "mesh-console-trace.png"), fullPage: true });
      });
    });
  });
}
