// The edge as a gateway, against the real Envoy running the edge config the
// generator writes for `make mesh` (envoy/generate.ts, local target, at a
// port offset of its own), the real edge backend (`node runner/instance.ts
// edge-backend`: reflection and the browser app) and, in place of users-0's
// sidecar, a small fake UserService that records what reaches it (so the
// edge is generated without the mesh's mTLS towards the services). What it
// shows:
//
// (a) 100 Logins a second from one client address are turned away past that
//     address's bucket (gRPC RESOURCE_EXHAUSTED, Connect HTTP 429 with a
//     Connect error body, gRPC-Web grpc-status 8; each with retry-after and
//     grpc-retry-pushback-ms) while another address still logs in; a route's
//     budget is shared by every address.
// (b) reflection through the edge lists only what the edge routes, and
//     payments' symbols and files are NOT_FOUND;
// (c) the browser app's responses carry runner/security-headers.ts's headers, once each,
//     and the app runs under that policy in Chromium with no violation, while an
//     injected inline script and framing by another page are refused;
// (d) an x-forwarded-client-cert header from outside never reaches the upstream;
// (e) with edge TLS on (the generator's edgeTls, a development certificate
//     from runner/edge-tls.ts), grpcurl and Node reach the edge over TLS with
//     h2 and http/1.1, and plaintext is refused.
//
// Client addresses: Linux routes all of 127/8 to lo, so a client socket bound
// to 127.0.0.2 (localAddress) is another address to the edge. Ports: offsets
// below every other test's (edge at 2180..6080), each checked free. Every
// loop is bounded in count and time; every process is killed in after().
// EDGE_DRILL_KEEP=1 keeps the folder with the configs and logs.
import { expect } from "chai";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import { connect as netConnect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { loadTopology } from "@shop/platform";
import { edgeServices, loadServiceDescriptors } from "../../envoy/contracts.ts";
import { RATE_LIMITED_MESSAGE, RETRY_AFTER_SECONDS } from "../../envoy/edge-limits.ts";
import { findEnvoy } from "../../envoy/find-envoy.ts";
import { generateConfigs } from "../../envoy/generate.ts";
import type { EdgeTls } from "../../envoy/edge.ts";
import { edgePorts, instancePorts } from "../../envoy/ports.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { ensureEdgeCert } from "../../runner/edge-tls.ts";
import { SECURITY_HEADERS } from "../../runner/security-headers.ts";
import { launchChromium } from "../browser/chromium.ts";
import { ensureWebBuild } from "../browser/web-build.ts";
import { grpcurl } from "../support/grpcurl.ts";
import { repoRoot } from "../support/process.ts";
import { readStats } from "./drill-mesh.ts";

const topology = loadTopology();
const CLIENT_A = "127.0.0.1";
const CLIENT_B = "127.0.0.2";
const LOGIN = "shop.users.v1.UserService/Login";
/** A route given a small budget for this drill (the generator's edgeRateLimits), to see it shared by every address. */
const SMALL_BUDGET_ROUTE = "shop.users.v1.UserService/GetProfile";
const SMALL_BUDGET = { requestsPerSecond: 5, burst: 5 };
const START_TIMEOUT_MS = 30_000;

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function portFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** An offset below every other test's where the edge's three ports and users-0's inbound port are free. */
async function freeOffset(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const offset = -5900 + 100 * Math.floor(Math.random() * 40);
    const e = edgePorts(topology, offset);
    const ports = [e.listener, e.admin, e.reflection, instancePorts(topology, "users", 0, offset).inbound];
    if ((await Promise.all(ports.map((p) => portFree(p)))).every(Boolean)) return offset;
  }
  throw new Error("no free ports for the edge drill after 20 offsets");
}

interface Proc {
  readonly child: ChildProcess;
  readonly log: string;
  readonly exited: Promise<void>;
  kill(): Promise<void>;
}

function startProcess(dir: string, name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  }).then(() => {
    live.delete(child);
  });
  return {
    child,
    log,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

const tail = (path: string) => {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-20).join("\n");
  } catch {
    return "(no log)";
  }
};

async function waitFor(what: string, check: () => Promise<boolean>, procs: readonly Proc[], timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead) throw new Error(`a process exited while waiting for ${what}; its log:\n${tail(dead.log)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** users-0's sidecar, faked: answers health checks, Login and the profile calls, and keeps the headers of calls that carry x-drill-call. */
function fakeUsers(): { server: http2.Http2Server; seen: Map<string, Headers> } {
  const seen = new Map<string, Headers>();
  const record = (ctx: HandlerContext) => {
    const id = ctx.requestHeader.get("x-drill-call");
    if (id) seen.set(id, new Headers(ctx.requestHeader));
  };
  const routes = (router: ConnectRouter) => {
    router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) });
    router.service(UserService, {
      login: (req, ctx) => {
        record(ctx);
        return { token: `token-for-${req.email}` };
      },
      getProfile: (_req, ctx) => {
        record(ctx);
        return {};
      },
      updateProfile: (_req, ctx) => {
        record(ctx);
        return {};
      },
    });
  };
  return { server: http2.createServer(connectNodeAdapter({ routes })), seen };
}

const login = { email: "drill@example.com", password: "a-long-password" };

describe("the edge as a gateway (rate limits, reflection, security headers, client certificates, TLS)", function () {
  this.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), "shop-edge-gateway-"));
  let offset = 0;
  let edge = edgePorts(topology, 0);
  let envoyBin = "";
  let envoy: Proc | undefined;
  let backend: Proc | undefined;
  let upstream: ReturnType<typeof fakeUsers> | undefined;
  let tls: EdgeTls;
  const url = () => `http://127.0.0.1:${edge.listener}`;

  async function startEdge(name: string, edgeTls?: EdgeTls): Promise<void> {
    const configs = await generateConfigs({
      target: "local",
      portOffset: offset,
      // The upstreams are fakes in the clear; the mesh's own mTLS has tests of its own.
      mtls: false,
      edgeTls,
      edgeRateLimits: { routes: { [SMALL_BUDGET_ROUTE]: SMALL_BUDGET } },
    });
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, configs.find((c) => c.kind === "edge")!.text);
    envoy = startProcess(dir, name, envoyBin, ["-c", file, "--disable-hot-restart", "--concurrency", "2", "--log-level", "warn", "--file-flush-interval-msec", "200"]);
    await waitFor(`the edge (${name}) to be ready`, async () => (await fetch(`http://127.0.0.1:${edge.admin}/ready`)).status === 200, [envoy]);
    await waitFor(
      "the edge to see users-0 healthy",
      async () => (await readStats(edge.admin, "cluster.users.")).get("cluster.users.membership_healthy") === 1,
      [envoy],
    );
  }

  async function stopEdge(): Promise<void> {
    await envoy?.kill();
    envoy = undefined;
  }

  before(async function () {
    envoyBin = findEnvoy();
    ensureWebBuild();
    tls = ensureEdgeCert(join(dir, "edge-tls"));
    offset = await freeOffset();
    edge = edgePorts(topology, offset);
    upstream = fakeUsers();
    await new Promise<void>((resolve, reject) => {
      upstream!.server.once("error", reject);
      upstream!.server.listen(instancePorts(topology, "users", 0, offset).inbound, "127.0.0.1", () => resolve());
    });
    backend = startProcess(dir, "edge-backend", process.execPath, ["runner/instance.ts", "edge-backend"], {
      ...process.env,
      MESH_PORT_OFFSET: String(offset),
      PORT: String(edge.reflection),
      HOST: "127.0.0.1",
      MESH_INSTANCE: "edge-backend",
      EDGE_REFLECTION: "on",
      MESH_DISCOVERY: "local",
      SHOP_DEV_KEYS: "1",
      LOG_LEVEL: "warn",
    });
    await waitFor("the edge backend to serve", async () => (await fetch(`http://127.0.0.1:${edge.reflection}/healthz`)).status === 200, [backend]);
    await startEdge("edge");
  });

  after(async function () {
    await stopEdge();
    await backend?.kill();
    await new Promise<void>((resolve) => (upstream ? upstream.server.close(() => resolve()) : resolve()));
    if (!process.env.EDGE_DRILL_KEEP) rmSync(dir, { recursive: true, force: true });
    else process.stdout.write(`kept ${dir}\n`);
  });

  /** gRPC (h2c) from a socket bound to this client address. */
  const grpcFrom = (address: string) =>
    createGrpcTransport({ baseUrl: url(), nodeOptions: { createConnection: () => netConnect({ host: "127.0.0.1", port: edge.listener, localAddress: address }) } });
  const failure = (call: Promise<unknown>) =>
    call.then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );

  /** Fires `count` Logins from one address, one every 1000/perSecond ms (not waiting for answers), and waits for them all. */
  async function loginFlood(address: string, count: number, perSecond: number): Promise<Array<ConnectError | undefined>> {
    const users = createClient(UserService, grpcFrom(address));
    const started = performance.now();
    const calls: Array<Promise<ConnectError | undefined>> = [];
    for (let n = 0; n < count; n++) {
      const due = started + (n * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      calls.push(failure(users.login(login, { timeoutMs: 5000 })));
    }
    return Promise.all(calls);
  }

  /** Waits until a new second's tokens are in every bucket (a bucket refills once a second). */
  const refill = () => new Promise((r) => setTimeout(r, 2100));

  describe("(a) rate limits", function () {
    it("turns away most of 100 Logins a second from one address with RESOURCE_EXHAUSTED and a retry hint, while another address still logs in", async function () {
      await refill();
      const flood = loginFlood(CLIENT_A, 100, 100);
      // Halfway through the flood, the other address signs in.
      await new Promise((r) => setTimeout(r, 500));
      const other = await createClient(UserService, grpcFrom(CLIENT_B)).login(login, { timeoutMs: 5000 });
      const outcomes = await flood;
      const ok = outcomes.filter((o) => o === undefined).length;
      const limited = outcomes.filter((o): o is ConnectError => o !== undefined);
      process.stdout.write(`      100 Logins in 1 s from ${CLIENT_A}: ${ok} answered, ${limited.length} turned away\n`);
      expect(other.token).to.equal(`token-for-${login.email}`);
      // The bucket: 20 saved up, 10 more a second (a little more if the flood ran long).
      expect(ok).to.be.within(20, 40);
      expect(limited.length).to.equal(100 - ok);
      for (const err of limited.slice(0, 5)) {
        expect(err.code, err.message).to.equal(Code.ResourceExhausted);
        expect(err.rawMessage).to.equal(RATE_LIMITED_MESSAGE);
        expect(err.metadata.get("retry-after")).to.equal(String(RETRY_AFTER_SECONDS));
        expect(err.metadata.get("grpc-retry-pushback-ms")).to.equal(String(RETRY_AFTER_SECONDS * 1000));
      }
      expect(new Set(limited.map((e) => e.code))).to.deep.equal(new Set([Code.ResourceExhausted]));
      // Turned away at the edge: the fake saw only the calls let through (and the other address's).
      const stats = await readStats(edge.admin, "route_shop_users_v1_UserService_Login.");
      expect(stats.get("route_shop_users_v1_UserService_Login.http_local_rate_limit.rate_limited")).to.be.at.least(limited.length);
    });

    it("answers Connect with HTTP 429, a Connect error body and retry-after; connect clients read RESOURCE_EXHAUSTED", async function () {
      await refill();
      const body = JSON.stringify(login);
      const post = () =>
        new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
          const req = http.request(
            `${url()}/${LOGIN}`,
            { method: "POST", localAddress: CLIENT_A, headers: { "content-type": "application/json", "connect-protocol-version": "1" }, timeout: 5000 },
            (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (c: string) => (text += c));
              res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
            },
          );
          req.on("timeout", () => req.destroy(new Error("timed out")));
          req.on("error", reject);
          req.end(body);
        });
      // 40 raw POSTs to read the answer as it is, and 20 calls of a connect client beside them, all at once.
      const connect = createClient(UserService, createConnectTransport({ baseUrl: url(), httpVersion: "1.1", nodeOptions: { localAddress: CLIENT_A } }));
      const [answers, clientOutcomes] = await Promise.all([
        Promise.all(Array.from({ length: 40 }, post)),
        Promise.all(Array.from({ length: 20 }, () => failure(connect.login(login, { timeoutMs: 5000 })))),
      ]);
      const answered = answers.filter((a) => a.status === 200).length + clientOutcomes.filter((o) => o === undefined).length;
      expect(answered, "Logins let through of 60").to.be.within(20, 30);
      const refused = answers.filter((a) => a.status === 429);
      expect(refused.length + answers.filter((a) => a.status === 200).length).to.equal(40);
      expect(refused.length).to.be.greaterThan(0);
      const one = refused[0];
      expect(one.headers["content-type"]).to.equal("application/json");
      expect(one.headers["retry-after"]).to.equal(String(RETRY_AFTER_SECONDS));
      expect(JSON.parse(one.body)).to.deep.equal({ code: "resource_exhausted", message: RATE_LIMITED_MESSAGE });
      // What connect-web in a browser (or connect-node) makes of it.
      const clientRefused = clientOutcomes.filter((o): o is ConnectError => o !== undefined);
      expect(clientRefused.length).to.be.greaterThan(0);
      expect(new Set(clientRefused.map((e) => e.code))).to.deep.equal(new Set([Code.ResourceExhausted]));
      expect(clientRefused[0].rawMessage).to.equal(RATE_LIMITED_MESSAGE);
    });

    it("answers gRPC-Web with grpc-status 8 and the same message", async function () {
      await refill();
      const web = createClient(UserService, createGrpcWebTransport({ baseUrl: url(), httpVersion: "1.1", nodeOptions: { localAddress: CLIENT_A } }));
      const outcomes = await Promise.all(Array.from({ length: 40 }, () => failure(web.login(login, { timeoutMs: 5000 }))));
      const limited = outcomes.filter((o): o is ConnectError => o !== undefined);
      expect(40 - limited.length).to.be.within(20, 30);
      expect(new Set(limited.map((e) => e.code))).to.deep.equal(new Set([Code.ResourceExhausted]));
      expect(limited[0].rawMessage).to.equal(RATE_LIMITED_MESSAGE);
    });

    it("gives a route one budget for every address: past it, every address is turned away on that route only", async function () {
      await refill();
      const a = createClient(UserService, grpcFrom(CLIENT_A));
      const b = createClient(UserService, grpcFrom(CLIENT_B));
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, n) => failure((n % 2 === 0 ? a : b).getProfile({}, { timeoutMs: 5000 }))));
      const ok = outcomes.filter((o) => o === undefined).length;
      expect(ok, "GetProfile calls let through, both addresses together").to.be.within(SMALL_BUDGET.burst, SMALL_BUDGET.burst + SMALL_BUDGET.requestsPerSecond);
      const limitedFrom = (from: number) => outcomes.filter((o, n) => n % 2 === from && o?.code === Code.ResourceExhausted).length;
      expect(limitedFrom(0) + limitedFrom(1)).to.equal(20 - ok);
      expect(limitedFrom(0), "turned away from A").to.be.greaterThan(0);
      expect(limitedFrom(1), "turned away from B").to.be.greaterThan(0);
      // Another route is untouched.
      await a.updateProfile({}, { timeoutMs: 5000 });
    });
  });

  describe("(b) reflection through the edge", function () {
    it("lists only what the edge routes: no payments", async function () {
      const result = await grpcurl(["-plaintext", `127.0.0.1:${edge.listener}`, "list"]);
      expect(result.code, result.stderr).to.equal(0);
      const listed = result.stdout.trim().split("\n").sort();
      const expected = edgeServices(topology, await loadServiceDescriptors(topology)).map((s) => s.typeName).sort();
      expect(listed).to.deep.equal(expected);
      expect(listed.filter((s) => s.startsWith("shop.payments."))).to.deep.equal([]);
      expect(listed).to.include("shop.users.v1.UserService");
    });

    it("answers NOT_FOUND for payments' symbols and files, and describes what the edge routes", async function () {
      const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: url() }));
      async function* requests() {
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "shop.payments.v1.PaymentService" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "shop.payments.v1.PaymentService.GetPayment" } };
        yield { messageRequest: { case: "fileByFilename" as const, value: "shop/payments/v1/payments.proto" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "shop.users.v1.UserService" } };
      }
      const answers = [];
      for await (const res of reflection.serverReflectionInfo(requests(), { timeoutMs: 10_000 })) answers.push(res);
      expect(answers).to.have.length(4);
      for (const res of answers.slice(0, 3)) {
        expect(res.messageResponse.case).to.equal("errorResponse");
        expect(res.messageResponse.case === "errorResponse" && res.messageResponse.value.errorCode).to.equal(Code.NotFound);
      }
      expect(answers[3].messageResponse.case).to.equal("fileDescriptorResponse");
      const describe = await grpcurl(["-plaintext", `127.0.0.1:${edge.listener}`, "describe", "shop.payments.v1.PaymentService"]);
      expect(describe.code).to.not.equal(0);
    });
  });

  describe("(c) the browser app's security headers", function () {
    it("serves index.html and its assets with every header of runner/security-headers.ts, once", async function () {
      const index = await fetch(`${url()}/`);
      expect(index.status).to.equal(200);
      const html = await index.text();
      const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, "a script in index.html").to.be.a("string");
      for (const res of [index, await fetch(`${url()}${script}`), await fetch(`${url()}/some/page`)]) {
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name), `${res.url}: ${name}`).to.equal(value);
      }
      expect(SECURITY_HEADERS["content-security-policy"]).to.contain("frame-ancestors 'none'");
    });

    it("lets the app load in Chromium under its policy, with no violation, while an injected inline script and framing are refused", async function () {
      this.timeout(60_000);
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        page.setDefaultTimeout(15_000);
        const refusals: string[] = [];
        page.on("console", (m) => {
          if (/Content Security Policy|Refused to/i.test(m.text())) refusals.push(m.text());
        });
        // Every violation the page sees, from before its first script runs.
        await page.addInitScript(() => {
          const seen: string[] = [];
          (window as unknown as { cspViolations: string[] }).cspViolations = seen;
          document.addEventListener("securitypolicyviolation", (e) => seen.push(`${e.effectiveDirective} ${e.blockedURI}`));
        });
        await page.goto(`${url()}/`);
        // The app's own script ran (it replaced "Loading…") and its stylesheet applied.
        await page.waitForFunction(() => !document.querySelector("#main")?.textContent?.includes("Loading"), undefined, { timeout: 15_000 });
        expect(await page.evaluate(() => getComputedStyle(document.body).fontFamily)).to.contain("system-ui");
        // What the console's waterfall does: a style attribute set from script.
        const styled = await page.evaluate(() => {
          const el = document.createElement("span");
          el.setAttribute("style", "margin-left: 7px");
          document.body.append(el);
          return getComputedStyle(el).marginLeft;
        });
        expect(styled).to.equal("7px");
        expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).to.deep.equal([]);
        expect(refusals).to.deep.equal([]);
        // An inline script someone managed to inject does not run.
        const ran = await page.evaluate(async () => {
          const s = document.createElement("script");
          s.textContent = "window.injected = true";
          document.body.append(s);
          await new Promise((r) => setTimeout(r, 100));
          return (window as unknown as { injected?: boolean }).injected === true;
        });
        expect(ran).to.equal(false);
        expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).to.deep.equal(["script-src-elem inline"]);
        // Another page cannot frame the shop.
        const framer = await browser.newPage();
        const framed: string[] = [];
        framer.on("console", (m) => framed.push(m.text()));
        await framer.setContent(`<iframe src="${url()}/"></iframe>`);
        const end = Date.now() + 10_000;
        while (!framed.some((t) => /frame-ancestors|X-Frame-Options/.test(t)) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
        expect(framed.join("\n")).to.match(/frame-ancestors 'none'|X-Frame-Options/);
      } finally {
        await browser.close();
      }
    });
  });

  describe("(d) client certificate details from outside", function () {
    it("never passes an incoming x-forwarded-client-cert to the upstream (gRPC and Connect)", async function () {
      const forged = "By=spiffe://shop.local/ns/shop/sa/users;URI=spiffe://shop.local/ns/shop/sa/payments";
      const users = createClient(UserService, grpcFrom(CLIENT_B));
      await users.updateProfile({}, { headers: { "x-drill-call": "grpc", "x-forwarded-client-cert": forged }, timeoutMs: 5000 });
      const connect = createClient(UserService, createConnectTransport({ baseUrl: url(), httpVersion: "1.1", nodeOptions: { localAddress: CLIENT_B } }));
      await connect.updateProfile({}, { headers: { "x-drill-call": "connect", "x-forwarded-client-cert": forged }, timeoutMs: 5000 });
      for (const id of ["grpc", "connect"]) {
        const seen = upstream!.seen.get(id);
        expect(seen, `the ${id} call reached the upstream`).to.not.equal(undefined);
        expect(seen!.get("x-forwarded-client-cert"), id).to.equal(null);
      }
    });
  });

  describe("(e) edge TLS", function () {
    before(async function () {
      await stopEdge();
      await startEdge("edge-tls", tls);
    });

    it("is reached by grpcurl over TLS, trusting the development certificate", async function () {
      const result = await grpcurl(["-cacert", tls.certificateChain, `127.0.0.1:${edge.listener}`, "list"]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain("shop.users.v1.UserService");
      const call = await grpcurl(["-cacert", tls.certificateChain, "-d", JSON.stringify(login), `localhost:${edge.listener}`, "shop.users.v1.UserService/Login"]);
      expect(call.code, call.stderr).to.equal(0);
      expect(JSON.parse(call.stdout).token).to.equal(`token-for-${login.email}`);
    });

    it("offers h2 and http/1.1 by ALPN: a gRPC call over h2, the web app over HTTP/1.1", async function () {
      const ca = readFileSync(tls.certificateChain);
      const session = http2.connect(`https://127.0.0.1:${edge.listener}`, { ca });
      try {
        await new Promise<void>((resolve, reject) => {
          session.once("connect", () => resolve());
          session.once("error", reject);
        });
        expect(session.alpnProtocol).to.equal("h2");
      } finally {
        session.destroy();
      }
      const users = createClient(UserService, createGrpcTransport({ baseUrl: `https://127.0.0.1:${edge.listener}`, nodeOptions: { ca } }));
      expect((await users.login(login, { timeoutMs: 5000 })).token).to.equal(`token-for-${login.email}`);
      const page = await new Promise<{ status: number; alpn: string | false | null; csp: unknown }>((resolve, reject) => {
        const agent = new https.Agent({ ca, ALPNProtocols: ["http/1.1"] });
        const req = https.get(`https://127.0.0.1:${edge.listener}/`, { agent, timeout: 5000 }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, alpn: (res.socket as import("node:tls").TLSSocket).alpnProtocol, csp: res.headers["content-security-policy"] });
        });
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", reject);
      });
      expect(page).to.deep.equal({ status: 200, alpn: "http/1.1", csp: SECURITY_HEADERS["content-security-policy"] });
    });

    it("refuses plaintext on the TLS port", async function () {
      // h2c in the clear: the TLS listener cannot read it as a ClientHello and closes the connection.
      const err = await failure(createClient(UserService, createGrpcTransport({ baseUrl: url() })).login(login, { timeoutMs: 3000 }));
      expect(err, "a plaintext call must fail").to.not.equal(undefined);
    });
  });
});
