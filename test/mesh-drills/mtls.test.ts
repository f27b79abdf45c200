// mTLS and callee-side authorization in the real mesh (runner/mesh.ts, every
// instance, sidecar and the edge as its own process, real Envoy), at port
// offsets 1,000 to 7,900 (ports 8,101 to 15,982), a range no other suite uses.
// What it shows:
//   (a) no inbound listener completes a call without a client certificate of
//       the mesh CA: no certificate, a certificate of another CA, cleartext
//       HTTP/2 and HTTP/1.1 all fail; the apps listen on 127.0.0.1 only;
//   (b) a valid mesh certificate of a service topology.json does not let call
//       the callee is refused PERMISSION_DENIED by the callee's sidecar, even
//       called straight at the inbound listener; allowed identities get
//       through; the app sees the verified caller in x-forwarded-client-cert,
//       never one the client sent;
//   (c) catalog's certificate re-issued while a steady, bounded load runs
//       through the edge and through orders' sidecar to catalog: both catalog
//       inbound listeners present the new serial within seconds, and not one
//       call fails.
// A drill, not a benchmark: no timing is asserted beyond bounds on waiting.
import { expect } from "chai";
import { existsSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { IncomingHttpHeaders } from "node:http2";
import { join } from "node:path";
import * as tls from "node:tls";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { peerService, XFCC_HEADER } from "../../platform/peer-identity.ts";
import { spiffeId } from "../../envoy/mtls.ts";
import { ensureMeshCerts, identityDir, readIssued, reissueCertificate, TLS_FILES } from "../../runner/mesh-certs.ts";
import { startLocalMesh } from "../mesh/local-mesh.ts";
import type { LocalMesh } from "../mesh/local-mesh.ts";
import { describeFailures, driveSteadily } from "./steady-load.ts";

const PERMISSION_DENIED = 7;
/** No single exchange in this file may take longer than this. */
const EXCHANGE_MS = 5000;

interface Identity {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

function identityIn(certsDir: string, name: string): Identity {
  const dir = identityDir(certsDir, name);
  return { cert: readFileSync(join(dir, TLS_FILES.cert)), key: readFileSync(join(dir, TLS_FILES.key)), ca: readFileSync(join(dir, TLS_FILES.ca)) };
}

/** Serial numbers compare as numbers: node prints them in hex, with or without leading zeros. */
const serialOf = (hex: string) => BigInt(`0x${hex}`);

/** TLS options of a client: a certificate when given, the mesh CA, and the peer's SPIFFE ID instead of a host name. */
function tlsOptions(ca: Buffer, who: Identity | undefined, expectedPeer?: string): tls.ConnectionOptions {
  return {
    ca,
    ...(who ? { cert: who.cert, key: who.key } : {}),
    ALPNProtocols: ["h2"],
    checkServerIdentity: (_host, cert) => (expectedPeer === undefined || cert.subjectaltname === `URI:${expectedPeer}` ? undefined : new Error(`peer is ${cert.subjectaltname}`)),
  };
}

interface H2Answer {
  readonly headers?: IncomingHttpHeaders;
  readonly grpcStatus?: number;
  readonly grpcMessage?: string;
  readonly error?: string;
}

/** One gRPC call (an empty message) on its own HTTP/2 connection, TLS when options are given; resolves with what came back or the error, bounded. */
function h2Call(port: number, path: string, options: tls.ConnectionOptions | undefined, headers: Record<string, string> = {}): Promise<H2Answer> {
  return new Promise((resolve) => {
    const session = options ? http2.connect(`https://127.0.0.1:${port}`, options) : http2.connect(`http://127.0.0.1:${port}`);
    let settled = false;
    const done = (answer: H2Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done({ error: `no answer within ${EXCHANGE_MS} ms` }), EXCHANGE_MS);
    session.on("error", (err: NodeJS.ErrnoException) => done({ error: `${err.code ?? ""} ${err.message}` }));
    session.on("close", () => done({ error: "the connection closed without an answer" }));
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let response: IncomingHttpHeaders | undefined;
    stream.on("response", (h) => (response = h));
    stream.on("trailers", (t) => {
      response = { ...response, ...t };
    });
    stream.on("error", (err: NodeJS.ErrnoException) => done({ error: `${err.code ?? ""} ${err.message}` }));
    stream.on("data", () => undefined);
    stream.on("end", () => {
      const status = response?.["grpc-status"];
      done({ headers: response, grpcStatus: status === undefined ? undefined : Number(status), grpcMessage: response?.["grpc-message"] as string | undefined });
    });
    stream.end(Buffer.alloc(5));
  });
}

/** The serial of the certificate a listener presents to a new connection (with a valid client certificate). */
function presentedSerial(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake with :${port} within ${EXCHANGE_MS} ms`));
    }, EXCHANGE_MS);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A typed client straight at an inbound listener, with a mesh identity. */
function directClient<S extends DescService>(service: S, port: number, ca: Buffer, who: Identity, callee: string): Client<S> {
  const { cert, key } = who;
  return createClient(service, createGrpcTransport({ baseUrl: `https://127.0.0.1:${port}`, nodeOptions: { ...tlsOptions(ca, { cert, key, ca }, spiffeId(callee)) } }));
}

/** Loopback-only listeners: the local addresses of the TCP sockets listening on a port (from /proc/net/tcp and tcp6). */
function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4 || fields[3] !== "0A") continue; // 0A: LISTEN
      const [addr, hexPort] = fields[1].split(":");
      if (Number.parseInt(hexPort, 16) !== port) continue;
      out.push(addr.length === 8 ? addr.match(/../g)!.reverse().map((b) => Number.parseInt(b, 16)).join(".") : addr);
    }
  }
  return out;
}

describe("mesh drill: mTLS and callee-side authorization (runner/mesh.ts, real Envoy)", function () {
  this.timeout(120_000);
  let mesh: LocalMesh;
  let certsDir: string;
  let ca: Buffer;
  const inbound = (instance: string) => {
    const found = mesh.state.instances.find((i) => i.name === instance);
    if (!found) throw new Error(`no instance ${instance}`);
    return found.ports.inbound;
  };
  const as = (name: string) => identityIn(certsDir, name);

  before(async function () {
    this.timeout(240_000);
    mesh = await startLocalMesh({ offsets: { from: 1_000, count: 70 } });
    certsDir = join(mesh.dir, "certs");
    ca = readFileSync(join(certsDir, "ca.crt"));
  });
  after(async function () {
    this.timeout(60_000);
    await mesh?.dispose();
  });

  describe("(a) no call without a certificate of the mesh CA", function () {
    it("fails the handshake of a client without a certificate at every inbound listener", async function () {
      for (const i of mesh.state.instances) {
        const answer = await h2Call(i.ports.inbound, "/grpc.health.v1.Health/Check", tlsOptions(ca, undefined));
        expect(answer.headers, `${i.name}: ${JSON.stringify(answer)}`).to.equal(undefined);
        expect(answer.error, i.name).to.match(/certificate required|alert number 116/i);
      }
    });

    it("fails a client whose certificate another CA signed, even with a mesh-shaped SPIFFE ID", async function () {
      const elsewhere = mkdtempSync(join(tmpdir(), "shop-other-ca-"));
      try {
        ensureMeshCerts(elsewhere, ["orders"]);
        const impostor = identityIn(elsewhere, "orders");
        for (const i of mesh.state.instances.filter((x) => x.service === "catalog")) {
          const answer = await h2Call(i.ports.inbound, "/shop.catalog.v1.CatalogService/GetProduct", { ...tlsOptions(ca, impostor) });
          expect(answer.headers, `${i.name}: ${JSON.stringify(answer)}`).to.equal(undefined);
          expect(answer.error, i.name).to.match(/unknown ca|alert number 48|certificate/i);
        }
      } finally {
        rmSync(elsewhere, { recursive: true, force: true });
      }
    });

    it("refuses cleartext HTTP/2 and HTTP/1.1 at every inbound listener", async function () {
      for (const i of mesh.state.instances) {
        const answer = await h2Call(i.ports.inbound, "/grpc.health.v1.Health/Check", undefined);
        expect(answer.headers, `${i.name}: ${JSON.stringify(answer)}`).to.equal(undefined);
        const http1 = await new Promise<string>((resolve) => {
          const req = http.request({ host: "127.0.0.1", port: i.ports.inbound, path: "/grpc.health.v1.Health/Check", method: "POST", timeout: EXCHANGE_MS }, (res) => resolve(`answered ${res.statusCode}`));
          req.on("timeout", () => req.destroy(new Error("timeout")));
          req.on("error", (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
          req.end();
        });
        expect(http1, i.name).to.match(/^error /);
      }
    });

    it("keeps every app on 127.0.0.1: only its sidecar reaches it", function () {
      for (const i of mesh.state.instances) {
        const addresses = listeningAddresses(i.ports.app);
        expect(addresses, `${i.name} :${i.ports.app}`).to.not.be.empty;
        expect(addresses.every((a) => a === "127.0.0.1"), `${i.name} listens on ${addresses.join(", ")}`).to.equal(true);
      }
    });
  });

  describe("(b) the callee's sidecar lets through only what topology.json allows", function () {
    it("refuses notifications' valid certificate at payments and at catalog with PERMISSION_DENIED, naming the rule", async function () {
      const notifications = tlsOptions(ca, as("notifications"), spiffeId("payments"));
      const atPayments = await h2Call(inbound("payments-0"), "/shop.payments.v1.PaymentService/GetPayment", notifications);
      expect(atPayments.grpcStatus, JSON.stringify(atPayments)).to.equal(PERMISSION_DENIED);
      expect(decodeURIComponent(atPayments.grpcMessage ?? "")).to.match(/sa\/notifications may not call \/shop\.payments\.v1\.PaymentService\/GetPayment on payments: topology.json lets no service call payments/);
      for (const replica of ["catalog-0", "catalog-1"]) {
        const answer = await h2Call(inbound(replica), "/shop.catalog.v1.CatalogService/GetProduct", tlsOptions(ca, as("notifications"), spiffeId("catalog")));
        expect(answer.grpcStatus, `${replica}: ${JSON.stringify(answer)}`).to.equal(PERMISSION_DENIED);
        expect(decodeURIComponent(answer.grpcMessage ?? "")).to.contain("topology.json lets orders, storefront call catalog");
      }
    });

    it("lets orders (a caller of catalog) through to catalog, and the edge to what it exposes", async function () {
      for (const replica of ["catalog-0", "catalog-1"]) {
        const { product } = await directClient(CatalogService, inbound(replica), ca, as("orders"), "catalog").getProduct({ sku: "latte-mug" }, { timeoutMs: EXCHANGE_MS });
        expect(product?.name, replica).to.equal("Latte Mug");
        const viaEdgeIdentity = await directClient(CatalogService, inbound(replica), ca, as("edge"), "catalog").getProduct({ sku: "latte-mug" }, { timeoutMs: EXCHANGE_MS });
        expect(viaEdgeIdentity.product?.name).to.equal("Latte Mug");
      }
    });

    it("lets the edge ask payments' health but not call payments (not exposed); the edge backend its admin services only", async function () {
      const health = await directClient(Health, inbound("payments-0"), ca, as("edge"), "payments").check({ service: "shop.payments.v1.PaymentService" }, { timeoutMs: EXCHANGE_MS });
      expect(health.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
      const asEdge = await h2Call(inbound("payments-0"), "/shop.payments.v1.PaymentService/GetPayment", tlsOptions(ca, as("edge"), spiffeId("payments")));
      expect(asEdge.grpcStatus, JSON.stringify(asEdge)).to.equal(PERMISSION_DENIED);
      // Through RBAC to the app, which wants an operator's token: UNAUTHENTICATED (16), not PERMISSION_DENIED from the sidecar.
      const admin = await directClient(EventAdminService, inbound("payments-0"), ca, as("edge-backend"), "payments")
        .getEventBacklog({}, { timeoutMs: EXCHANGE_MS })
        .then(
          () => expect.fail("expected UNAUTHENTICATED"),
          (err: unknown) => ConnectError.from(err),
        );
      expect(admin.code, admin.message).to.equal(Code.Unauthenticated);
      const notAdmin = await h2Call(inbound("payments-0"), "/shop.payments.v1.PaymentService/GetPayment", tlsOptions(ca, as("edge-backend"), spiffeId("payments")));
      expect(notAdmin.grpcStatus, JSON.stringify(notAdmin)).to.equal(PERMISSION_DENIED);
    });

    it("still answers through the edge and through orders' sidecar: the proxies present their own certificates", async function () {
      const viaEdge = createClient(CatalogService, createGrpcTransport({ baseUrl: mesh.edgeUrl }));
      expect((await viaEdge.getProduct({ sku: "latte-mug" }, { timeoutMs: EXCHANGE_MS })).product?.name).to.equal("Latte Mug");
      const orders0 = mesh.state.instances.find((i) => i.name === "orders-0")!;
      const viaOrders = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders0.ports.outbound}` }));
      expect((await viaOrders.getProduct({ sku: "latte-mug" }, { timeoutMs: EXCHANGE_MS })).product?.name).to.equal("Latte Mug");
    });
  });

  describe("(c) certificate rotation under steady load", function () {
    it("re-issues catalog's certificate while calls run: Envoy presents the new serial, and no call fails", async function () {
      const edgeIdentity = tlsOptions(ca, as("edge"), spiffeId("catalog"));
      const replicas = ["catalog-0", "catalog-1"].map(inbound);
      const before = readIssued(certsDir, "catalog")!;
      for (const port of replicas) expect(serialOf(await presentedSerial(port, edgeIdentity))).to.equal(serialOf(before.serial));

      const viaEdge = createClient(CatalogService, createGrpcTransport({ baseUrl: mesh.edgeUrl }));
      const orders0 = mesh.state.instances.find((i) => i.name === "orders-0")!;
      const viaOrders = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${orders0.ports.outbound}` }));
      let rotated: { serial: string; atMs: number; seenAtMs?: number } | undefined;
      const began = performance.now();
      const result = await driveSteadily({
        ratePerSecond: 40,
        durationMs: 10_000,
        async call(n) {
          const client = n % 2 === 0 ? viaEdge : viaOrders;
          const { product } = await client.getProduct({ sku: "latte-mug" }, { timeoutMs: 3000 });
          return product?.name ?? "";
        },
        during: {
          atCall: 80,
          async run() {
            const issued = reissueCertificate(certsDir, "catalog");
            rotated = { serial: issued.serial, atMs: performance.now() - began };
            // Bounded: Envoy's SDS watch reloads within moments; give it 15 s.
            const end = Date.now() + 15_000;
            for (;;) {
              const seen = await Promise.all(replicas.map((p) => presentedSerial(p, edgeIdentity)));
              if (seen.every((s) => serialOf(s) === serialOf(issued.serial))) {
                rotated.seenAtMs = performance.now() - began;
                return;
              }
              if (Date.now() > end) throw new Error(`catalog still presents ${seen.join(", ")}, not ${issued.serial}, 15 s after the re-issue`);
              await new Promise((r) => setTimeout(r, 100));
            }
          },
        },
      });
      const loadEndedMs = Math.max(...result.outcomes.map((o) => o.startedMs + o.elapsedMs));
      expect(result.outcomes).to.have.length(400);
      expect(result.outcomes.filter((o) => o.code !== 0), describeFailures(result.outcomes)).to.deep.equal([]);
      expect(rotated?.seenAtMs, "the new certificate was seen").to.be.a("number");
      expect(serialOf(rotated!.serial)).to.not.equal(serialOf(before.serial));
      // The switch happened while calls ran, with calls on both sides of it.
      expect(rotated!.seenAtMs!).to.be.lessThan(loadEndedMs);
      expect(result.outcomes.filter((o) => o.startedMs > rotated!.seenAtMs!).length, "calls after the new certificate was seen").to.be.greaterThan(20);
      // The CA did not change: the old certificate's callers still verify the new one.
      expect(readIssued(certsDir, "catalog")!.serial).to.equal(rotated!.serial);
    });
  });

  describe("the app learns its caller from x-forwarded-client-cert, as the sidecar verified it", function () {
    // Last: payments-0 is replaced by a bare HTTP/2 server on its port that records what reaches it.
    let stand: http2.Http2Server | undefined;
    after(async function () {
      if (stand) await new Promise((r) => stand!.close(r));
    });

    it("passes the verified URI SAN and replaces a forged header", async function () {
      const payments = mesh.state.instances.find((i) => i.name === "payments-0")!;
      const proc = mesh.state.processes.find((p) => p.name === "payments-0")!;
      process.kill(-proc.pid, "SIGKILL");
      const seen: IncomingHttpHeaders[] = [];
      stand = http2.createServer();
      stand.on("stream", (stream, headers) => {
        seen.push(headers);
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        // HealthCheckResponse { status: SERVING }.
        stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]));
      });
      const end = Date.now() + 10_000;
      for (;;) {
        const listening = await new Promise<boolean>((resolve) => {
          stand!.once("error", () => resolve(false));
          stand!.listen(payments.ports.app, "127.0.0.1", () => resolve(true));
        });
        if (listening) break;
        if (Date.now() > end) throw new Error(`payments-0's port ${payments.ports.app} stayed taken`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const forged = { [XFCC_HEADER]: `URI=${spiffeId("orders")}` };
      const answer = await h2Call(payments.ports.inbound, "/grpc.health.v1.Health/Check", tlsOptions(ca, as("edge"), spiffeId("payments")), forged);
      expect(answer.grpcStatus, JSON.stringify(answer)).to.equal(0);
      const xfcc = seen.map((h) => h[XFCC_HEADER]).find((v) => v !== undefined);
      expect(xfcc, "x-forwarded-client-cert reached the app").to.be.a("string");
      expect(xfcc).to.contain(`URI=${spiffeId("edge")}`).and.not.contain("sa/orders");
      expect(peerService(String(xfcc))).to.equal("edge");
    });
  });
});
