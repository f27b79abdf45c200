// `make mesh` end to end: every instance, sidecar and the edge as separate
// OS processes (runner/mesh.ts), called from outside only through the edge,
// with the real grpcurl and curl binaries, a gRPC-Web client and generated
// gRPC clients.
import { expect } from "chai";
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { OrderService, OrderStatus } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { loadTopology } from "@shop/platform";
import { loadServiceDescriptors } from "../../envoy/contracts.ts";
import { grpcurl } from "../support/grpcurl.ts";
import { edgeApiDocsSuite } from "./edge-api-docs.ts";
import { edgeWebAndConsoleSuite } from "./edge-web-console.ts";
import { startLocalMesh } from "./local-mesh.ts";
import type { LocalMesh } from "./local-mesh.ts";

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", "10", ...args], (err, stdout) => resolve({ code: err ? 1 : 0, stdout }));
  });
}

function newTrace(): { traceId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
}

/** Polls until check answers a value; the access logs reach their files within a second. */
async function eventually<T>(what: string, check: () => T | undefined, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** rpc_server_requests_total of one method, from an instance's /metrics. */
async function requestsServed(port: number, method: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("rpc_server_requests_total{") && l.includes(`method="${method}"`));
  return line ? Number(line.split(" ").pop()) : 0;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("make mesh: the shop as separate processes behind Envoy", function () {
  this.timeout(60_000);
  let mesh: LocalMesh;
  let grpc: <S extends DescService>(service: S) => Client<S>;
  const topology = loadTopology();

  before(async function () {
    this.timeout(150_000);
    mesh = await startLocalMesh();
    const transport = createGrpcTransport({ baseUrl: mesh.edgeUrl });
    grpc = (service) => createClient(service, transport);
  });
  after(async function () {
    this.timeout(60_000);
    await mesh?.dispose();
  });

  it("runs two replicas of catalog, inventory and orders, each beside its own sidecar, plus the edge", function () {
    const names = mesh.state.processes.map((p) => p.name);
    for (const service of ["catalog", "inventory", "orders"]) {
      expect(names).to.include.members([`${service}-0`, `${service}-1`, `sidecar-${service}-0`, `sidecar-${service}-1`]);
    }
    expect(names).to.include.members(["edge", "edge-backend"]);
    expect(mesh.state.instances).to.have.length(Object.values(topology.services).reduce((n, s) => n + s.replicas, 0));
  });

  it("reports every service SERVING through the edge, the service named by x-shop-service", async function () {
    for (const [service, grpcServices] of await loadServiceDescriptors(topology)) {
      const res = await grpc(Health).check({ service: grpcServices[0].typeName }, { headers: { "x-shop-service": service } });
      expect(res.status, service).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    }
  });

  describe("grpcurl through the edge", function () {
    it("lists every exposed service through reflection", async function () {
      const result = await grpcurl(["-plaintext", mesh.edgeAddress, "list"]);
      expect(result.stderr).to.equal("");
      expect(result.stdout.trim().split("\n")).to.include.members([
        "shop.users.v1.UserService",
        "shop.catalog.v1.CatalogService",
        "shop.inventory.v1.InventoryService",
        "shop.orders.v1.OrderService",
        "shop.notifications.v1.NotificationService",
        "shop.storefront.v1.StorefrontService",
      ]);
    });

    it("describes a service with its contract options", async function () {
      const result = await grpcurl(["-plaintext", mesh.edgeAddress, "describe", "shop.orders.v1.OrderService"]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain("rpc WatchOrder").and.contain("returns ( stream .shop.orders.v1.WatchOrderResponse )").and.contain("deadline_ms: 300000");
    });

    it("calls a method", async function () {
      const result = await grpcurl(["-plaintext", "-d", '{"page_size": 2}', mesh.edgeAddress, "shop.catalog.v1.CatalogService/ListProducts"]);
      expect(result.code, result.stderr).to.equal(0);
      expect((JSON.parse(result.stdout) as { products: unknown[] }).products).to.have.length(2);
    });
  });

  describe("browser protocols through the edge, answered by the services themselves", function () {
    it("Connect JSON with curl: POST, and GET for a read-only method", async function () {
      const post = await curl(["-H", "content-type: application/json", "-d", '{"query":"tea"}', `${mesh.edgeUrl}/shop.catalog.v1.CatalogService/SearchProducts`]);
      const found = JSON.parse(post.stdout) as { products: Array<{ sku: string }> };
      expect(found.products.map((p) => p.sku)).to.include("black-tea-assam");
      const message = encodeURIComponent(JSON.stringify({ sku: "latte-mug" }));
      const get = await curl([`${mesh.edgeUrl}/shop.catalog.v1.CatalogService/GetProduct?connect=v1&encoding=json&message=${message}`]);
      expect((JSON.parse(get.stdout) as { product: { name: string } }).product.name).to.equal("Latte Mug");
    });

    it("Connect errors keep their code: an unknown product is NOT_FOUND", async function () {
      const res = await curl(["-w", "\\n%{http_code}", "-H", "content-type: application/json", "-d", '{"sku":"no-such-thing"}', `${mesh.edgeUrl}/shop.catalog.v1.CatalogService/GetProduct`]);
      const [body, status] = res.stdout.split("\n");
      expect(status).to.equal("404");
      expect((JSON.parse(body) as { code: string }).code).to.equal("not_found");
    });

    it("gRPC-Web over HTTP/1.1 (connect-node's gRPC-Web transport)", async function () {
      const web = createClient(CatalogService, createGrpcWebTransport({ baseUrl: mesh.edgeUrl, httpVersion: "1.1" }));
      const { product } = await web.getProduct({ sku: "latte-mug" });
      expect(product?.name).to.equal("Latte Mug");
      const err = await web.getProduct({ sku: "no-such-thing" }).then(
        () => expect.fail("expected NOT_FOUND"),
        (e: unknown) => ConnectError.from(e),
      );
      expect(err.code).to.equal(Code.NotFound);
    });

    it("answers a CORS preflight for the configured web origin", async function () {
      const res = await curl([
        "-i",
        "-X",
        "OPTIONS",
        "-H",
        "origin: http://localhost:5173",
        "-H",
        "access-control-request-method: POST",
        `${mesh.edgeUrl}/shop.orders.v1.OrderService/CreateOrder`,
      ]);
      expect(res.stdout).to.match(/^access-control-allow-origin: http:\/\/localhost:5173\r?$/m);
    });
  });

  it("takes a whole purchase through the edge: sign up, log in, create an order, watch it to CONFIRMED", async function () {
    const email = `mesh-${randomUUID().slice(0, 8)}@example.com`;
    await grpc(UserService).signUp({ email, password: "a-long-password", displayName: "Mesh" });
    const { token } = await grpc(UserService).login({ email, password: "a-long-password" });
    const auth = { headers: { authorization: `Bearer ${token}` } };
    const orders = grpc(OrderService);
    const { order } = await orders.createOrder({ idempotencyKey: randomUUID(), items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod: "pm_card_ok" }, auth);
    expect(order?.status).to.equal(OrderStatus.PENDING);
    const statuses: OrderStatus[] = [];
    for await (const update of orders.watchOrder({ orderId: order!.orderId }, { ...auth, timeoutMs: 30_000 })) {
      if (update.order) statuses.push(update.order.status);
    }
    expect(statuses[statuses.length - 1]).to.equal(OrderStatus.CONFIRMED);
  });

  it("balances calls across both catalog replicas, each call served once", async function () {
    const catalog = mesh.state.instances.filter((i) => i.service === "catalog");
    // make mesh waits until each service has a healthy replica; on a busy
    // machine the second may pass its health checks a moment later. Balance
    // is only defined once the edge sees both.
    const edgeAdmin = mesh.state.edge.admin;
    for (let tries = 0; ; tries++) {
      const stats = await (await fetch(`http://127.0.0.1:${edgeAdmin}/stats?filter=^cluster\\.catalog\\.membership_healthy`)).text();
      if (/membership_healthy: 2$/m.test(stats)) break;
      if (tries >= 100) throw new Error(`the edge never saw both catalog replicas healthy: ${stats.trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = await Promise.all(catalog.map((i) => requestsServed(i.ports.app, "GetProduct")));
    // A replica that just turned healthy reaches the edge's worker threads a
    // moment after its stats say so (with mTLS, a few hundred milliseconds
    // here): call in rounds of 20, pausing between rounds, until both
    // replicas have served, bounded at 1000 calls and 5 s.
    let calls = 0;
    let served: number[] = [];
    const until = Date.now() + 5000;
    do {
      for (let n = 0; n < 20; n++) await grpc(CatalogService).getProduct({ sku: "latte-mug" });
      calls += 20;
      const after = await Promise.all(catalog.map((i) => requestsServed(i.ports.app, "GetProduct")));
      served = after.map((count, i) => count - before[i]);
      if (served.some((count) => count === 0)) await new Promise((r) => setTimeout(r, 100));
    } while (served.some((count) => count === 0) && calls < 1000 && Date.now() < until);
    expect(served.reduce((a, b) => a + b, 0)).to.equal(calls);
    const edgeStats = (await (await fetch(`http://127.0.0.1:${edgeAdmin}/stats?filter=^cluster\\.catalog\\.(outlier|membership|health_check|upstream_rq_retry|upstream_cx_connect_fail|ssl\\.handshake|ssl\\.connection_error|upstream_cx_total)`)).text()).trim();
    const hosts = (await (await fetch(`http://127.0.0.1:${edgeAdmin}/clusters`)).text())
      .split("\n")
      .filter((l) => /^catalog::.*::(health_flags|rq_total|cx_total|rq_success|rq_error)::/.test(l))
      .join("\n");
    for (const [i, count] of served.entries()) expect(count, `${catalog[i].name} served ${count} of ${calls}; the edge's view:\n${edgeStats}\n${hosts}`).to.be.greaterThan(0);
  });

  it("keeps one trace from the edge through the orders sidecar to catalog", async function () {
    const { traceId, traceparent } = newTrace();
    const email = `trace-${randomUUID().slice(0, 8)}@example.com`;
    await grpc(UserService).signUp({ email, password: "a-long-password", displayName: "Trace" });
    const { token } = await grpc(UserService).login({ email, password: "a-long-password" });
    await grpc(OrderService).createOrder(
      { idempotencyKey: randomUUID(), items: [{ sku: "hand-grinder", quantity: 1 }], paymentMethod: "pm_card_ok" },
      { headers: { authorization: `Bearer ${token}`, traceparent } },
    );
    const inTrace = (l: Record<string, unknown>) => l.trace_id === traceId;
    const linesOf = (names: string[]): Array<Record<string, unknown> & { file: string }> =>
      names.flatMap((n) => mesh.logLines(n).filter(inTrace).map((l) => ({ ...l, file: n })));
    const replicasOf = (service: string) => mesh.state.instances.filter((i) => i.service === service).map((i) => i.name);

    const edge = await eventually("the edge's access log line", () => linesOf(["edge"]).find((l) => l.path === "/shop.orders.v1.OrderService/CreateOrder"));
    expect(edge).to.include({ grpc_status: "OK", upstream_cluster: "orders" });
    const ordersApp = await eventually("orders' rpc line", () => linesOf(replicasOf("orders")).find((l) => l.msg === "rpc" && l.method === "CreateOrder"));
    const ordersSidecar = `sidecar-${ordersApp.file}`;
    await eventually("the orders sidecar's inbound line", () => linesOf([ordersSidecar]).find((l) => l.listener === "inbound" && String(l.path).endsWith("/CreateOrder")));
    const outbound = await eventually("the orders sidecar's outbound line", () => linesOf([ordersSidecar]).find((l) => l.listener === "outbound" && String(l.path).endsWith("/QuotePrice")));
    expect(outbound).to.include({ upstream_cluster: "catalog", grpc_status: "OK" });
    const catalogApp = await eventually("catalog's rpc line", () => linesOf(replicasOf("catalog")).find((l) => l.msg === "rpc" && l.method === "QuotePrice"));
    await eventually("the catalog sidecar's inbound line", () => linesOf([`sidecar-${catalogApp.file}`]).find((l) => l.listener === "inbound" && String(l.path).endsWith("/QuotePrice")));
  });

  it("refuses, at the sidecar, a call topology.json does not allow: orders may call catalog only", async function () {
    const orders0 = mesh.state.instances.find((i) => i.name === "orders-0")!;
    const asOrders = createClient(UserService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders0.ports.outbound}` }));
    const err = await asOrders.getProfile({}).then(
      () => expect.fail("expected PERMISSION_DENIED"),
      (e: unknown) => ConnectError.from(e),
    );
    expect(err.code).to.equal(Code.PermissionDenied);
    expect(err.rawMessage).to.equal("orders may not call this: topology.json lets it call catalog");
  });

  it("serves each sidecar's admin stats on loopback, where the orders sidecar sees both catalog replicas healthy", async function () {
    const orders = mesh.state.instances.filter((i) => i.service === "orders");
    let quoted = 0;
    for (const i of orders) {
      const stats = await (await fetch(`http://127.0.0.1:${i.ports.admin}/stats?filter=^cluster\\.catalog\\.`)).text();
      expect(stats).to.match(/^cluster\.catalog\.membership_healthy: 2$/m);
      expect(stats).to.match(/^cluster\.catalog\.upstream_rq_retry: \d+$/m);
      expect(stats).to.match(/^cluster\.catalog\.outlier_detection\.ejections_active: 0$/m);
      quoted += Number(/^cluster\.catalog\.upstream_rq_total: (\d+)$/m.exec(stats)?.[1] ?? 0);
    }
    // The purchases above asked catalog for quotes through these sidecars.
    expect(quoted).to.be.greaterThan(0);
  });

  edgeWebAndConsoleSuite(() => mesh);
  edgeApiDocsSuite(() => mesh);

  // Last: mocha runs a suite's own tests before its nested suites.
  describe("Ctrl-C", function () {
    it("stops every process it started on Ctrl-C (SIGINT), and exits 0", async function () {
      this.timeout(45_000);
      const pids = mesh.state.processes.map((p) => p.pid);
      expect(pids.every(processAlive)).to.equal(true);
      const { code } = await mesh.stop("SIGINT");
      expect(code).to.equal(0);
      expect(mesh.output).to.include("mesh stopped");
      expect(pids.filter(processAlive)).to.deep.equal([]);
    });
  });
});
