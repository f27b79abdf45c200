// Graceful shutdown on SIGTERM, as Kubernetes sends it: health turns
// NOT_SERVING so the mesh stops routing here, new calls are refused, the call
// in flight finishes, and the process exits 0.
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/health/v1/health_pb.js";
import { EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import type { EchoResponse } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

/** Resolves once the server reports an Echo in flight on /metrics. */
async function echoInFlight(server: ServerProcess): Promise<void> {
  const giveUpAt = performance.now() + 3000;
  while (performance.now() < giveUpAt) {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    if (/^rpc_server_in_flight\{service="mesh\.testing\.v1\.EchoService",method="Echo"\} 1$/m.test(text)) return;
  }
  throw new Error("the Echo never showed as in flight");
}

describe("shutdown on SIGTERM with a call in flight", function () {
  let server: ServerProcess;
  let inFlight: Promise<EchoResponse>;
  let inFlightSettled = false;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
    inFlight = grpcClient(EchoService, server.url).echo({ message: "in flight", sleepMs: 1500 });
    inFlight.then(
      () => (inFlightSettled = true),
      () => (inFlightSettled = true),
    );
    await echoInFlight(server);
    server.child.kill("SIGTERM");
    await server.waitForLog((l) => l.msg === "draining");
  });

  after(async function () {
    await server?.stop();
  });

  it('answers NOT_SERVING to Health Check "" while the call is still in flight', async function () {
    const res = await grpcClient(Health, server.url).check({ service: "" });
    expect(res.status).to.equal(Status.NOT_SERVING);
    expect(inFlightSettled, "the in-flight call had already finished").to.equal(false);
  });

  it("answers NOT_SERVING for the service's own name too, and 503 on /healthz", async function () {
    const res = await grpcClient(Health, server.url).check({ service: "mesh.testing.v1.EchoService" });
    expect(res.status).to.equal(Status.NOT_SERVING);
    expect((await fetch(`${server.url}/healthz`)).status).to.equal(503);
    expect(inFlightSettled, "the in-flight call had already finished").to.equal(false);
  });

  it("refuses a new Echo with UNAVAILABLE while the call is still in flight", async function () {
    const err = await failureOf(grpcClient(EchoService, server.url).echo({ message: "too late" }));
    expect(err.code).to.equal(Code.Unavailable);
    expect(inFlightSettled, "the in-flight call had already finished").to.equal(false);
  });

  it("lets the in-flight call complete OK", async function () {
    const res = await inFlight;
    expect(res.message).to.equal("in flight");
  });

  it("exits with code 0", async function () {
    expect(await server.exited).to.deep.equal({ code: 0, signal: null });
  });

  it('logged "draining", then "stopped"', async function () {
    await server.exited;
    const messages = server.logs.map((l) => l.msg).filter((m) => m === "draining" || m === "stopped");
    expect(messages).to.deep.equal(["draining", "stopped"]);
  });
});

describe("shutdown on SIGTERM with no client connected", function () {
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
  });

  after(async function () {
    await server?.stop();
  });

  it('finishes its drain: logs "draining", then "stopped", and exits 0', async function () {
    server.child.kill("SIGTERM");
    const exit = await server.exited;
    const messages = server.logs.map((l) => l.msg).filter((m) => m === "draining" || m === "stopped");
    expect(messages).to.deep.equal(["draining", "stopped"]);
    expect(exit).to.deep.equal({ code: 0, signal: null });
  });
});

describe("shutdown on SIGTERM with a Health Watch open", function () {
  // A Watch never ends by itself: client-side health checking keeps one open
  // for the life of the connection. The drain timeout is set well above what
  // the drain should take, so a drain that waits for the Watch shows.
  const drainTimeoutMs = 4000;
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", { DRAIN_TIMEOUT_MS: String(drainTimeoutMs) });
  });

  after(async function () {
    await server?.stop();
  });

  it("tells the watcher NOT_SERVING and exits 0 without waiting out the drain timeout", async function () {
    const abort = new AbortController();
    const statuses = grpcClient(Health, server.url).watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      expect((await statuses.next()).value?.status).to.equal(Status.SERVING);
      const signalled = performance.now();
      server.child.kill("SIGTERM");
      expect((await statuses.next()).value?.status).to.equal(Status.NOT_SERVING);
      const exit = await server.exited;
      const tookMs = performance.now() - signalled;
      expect(exit).to.deep.equal({ code: 0, signal: null });
      expect(server.logs.map((l) => l.msg)).to.not.include("drain timeout: closing with calls in flight");
      expect(tookMs).to.be.below(drainTimeoutMs / 2);
    } finally {
      abort.abort();
    }
  });
});
