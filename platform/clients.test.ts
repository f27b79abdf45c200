// The in-process transport: a service calling another in the same process
// goes through the same pipeline as a network call (deadline, auth,
// validation, logs, tracing) without serialising, and neither side can change
// the other's messages. Given the topology, the factory refuses a client for
// a service the caller may not call.
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { EchoRequestSchema, EchoResponseSchema } from "../gen/mesh/testing/v1/echo_pb.js";
import { OpsService } from "../gen/mesh/v1/ops_pb.js";
import type { EchoRequest } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, collect, failureOf } from "../test/support/connect-clients.ts";
import { CLIENT_ATTEMPTS, createClientFactory } from "./clients.ts";
import type { ClientFactory } from "./clients.ts";
import { ServingStatus } from "./health.ts";
import type { Topology } from "./ops/topology.ts";
import { createServer } from "./server.ts";
import type { ShopServer } from "./server.ts";
import { createLogger } from "./telemetry/logger.ts";
import { createRpcMetrics } from "./telemetry/metrics.ts";
import { createEchoService, EchoService } from "./testing/echo-service.ts";
import { testAuthority } from "../test/support/keys.ts";

interface LogRecord {
  msg: string;
  [key: string]: unknown;
}

/** A server in this process whose log lines land in an array. */
function createQuietServer(logs: LogRecord[]): ShopServer {
  return createServer({
    port: 0,
    host: "127.0.0.1",
    logger: createLogger({ level: "debug", destination: { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) } }),
    tokens: testAuthority(),
    metrics: createRpcMetrics({ defaultMetrics: false }),
  });
}

describe("in-process transport", function () {
  const logs: LogRecord[] = [];
  let server: ShopServer;
  let clients: ClientFactory;

  before(async function () {
    server = createQuietServer(logs);
    // Relay's downstream is this same process's Echo.
    const serviceClients = createClientFactory({
      caller: "local",
      tokens: server.tokens,
      routeFor: () => ({ kind: "in-process", lookup: server.route }),
    });
    server.register("local", EchoService, createEchoService({ instance: "local", clients: serviceClients }));
    await server.listen();
    clients = createClientFactory({
      caller: "tester",
      tokens: server.tokens,
      metrics: server.metrics,
      routeFor: () => ({ kind: "in-process", lookup: server.route }),
    });
  });

  let drained = false;

  after(async function () {
    if (!drained) await server?.drain();
  });

  it("calls Echo through the pipeline, which logs the call with an in-process peer", async function () {
    const res = await clients.client(EchoService).echo({ message: "in process" });
    expect(res).to.include({ message: "in process", instance: "local" });
    const line = logs.find((l) => l.msg === "rpc" && l.trace_id === res.traceId);
    expect(line).to.include({ method: "Echo", code: "OK", peer: "in-process:tester", app: "local" });
  });

  it("gives the handler the caller's remaining budget: timeoutMs 500 → at most 500", async function () {
    const res = await clients.client(EchoService).echo({ message: "budget" }, { timeoutMs: 500 });
    expect(Number(res.budgetMs)).to.be.at.most(500).and.above(400);
  });

  it("applies the contract's default deadline when the caller sets none", async function () {
    const res = await clients.client(EchoService).echo({ message: "default" });
    expect(Number(res.budgetMs)).to.be.at.most(2000).and.above(1500);
  });

  it("Relay → Echo in process: Echo inherits what Relay had left, in the same trace", async function () {
    const res = await clients.client(EchoService).relay({ message: "hop", waitMs: 200 }, { timeoutMs: 800 });
    expect(Number(res.budgetMs)).to.be.at.most(800).and.above(600);
    expect(res.downstream?.instance).to.equal("local");
    expect(Number(res.downstream?.budgetMs)).to.be.at.most(600).and.above(0);
    const relayLine = logs.find((l) => l.msg === "rpc" && l.method === "Relay" && l.trace_id === res.downstream?.traceId);
    expect(relayLine, "Relay's log line in Echo's trace").to.include({ code: "OK", peer: "in-process:tester" });
  });

  it("streams Count in process", async function () {
    const values = (await collect(clients.client(EchoService).count({ n: 3 }))).map((r) => r.value);
    expect(values).to.deep.equal([1, 2, 3]);
  });

  it("validates in process: Echo sleep_ms 70000 answers INVALID_ARGUMENT naming sleep_ms", async function () {
    const err = await failureOf(clients.client(EchoService).echo({ sleepMs: 70_000 }));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage).to.include("sleep_ms");
  });

  it("authenticates in process with the factory's service token: WhoAmI answers kind service", async function () {
    const res = await clients.client(EchoService).whoAmI({});
    expect(res).to.include({ kind: "service", subject: "tester" });
  });

  it("lets the factory's service token call a service-only method", async function () {
    const res = await clients.client(EchoService).internal({});
    expect(res.caller).to.equal("tester");
  });

  it("refuses a bad token in process with UNAUTHENTICATED", async function () {
    const err = await failureOf(clients.client(EchoService).whoAmI({}, { headers: { authorization: "Bearer garbage" } }));
    expect(err.code).to.equal(Code.Unauthenticated);
  });

  it("refuses a user token on a service-only method with PERMISSION_DENIED", async function () {
    const { token } = await server.tokens.issueUserToken("user-7");
    const err = await failureOf(clients.client(EchoService).internal({}, { headers: { authorization: `Bearer ${token}` } }));
    expect(err.code).to.equal(Code.PermissionDenied);
  });

  it("drains: health turns NOT_SERVING and new in-process calls answer UNAVAILABLE", async function () {
    await server.drain();
    drained = true;
    expect(server.health.get("")).to.equal(ServingStatus.NOT_SERVING);
    const err = await failureOf(clients.client(EchoService).echo({ message: "after drain" }));
    expect(err.code).to.equal(Code.Unavailable);
    expect(logs.map((l) => l.msg)).to.include.members(["draining", "stopped"]);
  });
});

describe("in-process transport copies messages at the boundary", function () {
  const logs: LogRecord[] = [];
  let server: ShopServer;
  let received: EchoRequest[];
  // The handler answers every call with this one object it keeps.
  const kept = create(EchoResponseSchema, { message: "kept by the handler", instance: "copying" });

  before(function () {
    received = [];
    server = createQuietServer(logs);
    const impl: Partial<ServiceImpl<typeof EchoService>> = {
      echo(req) {
        received.push(req);
        req.message = "changed by the handler";
        return kept;
      },
    };
    // Routes exist from register(); this server never needs to listen.
    server.register("copying", EchoService, impl);
  });

  it("the handler gets a copy: changing it leaves the caller's request alone", async function () {
    const clients = createClientFactory({ caller: "tester", tokens: server.tokens, routeFor: () => ({ kind: "in-process", lookup: server.route }) });
    const request = create(EchoRequestSchema, { message: "the caller's" });
    await clients.client(EchoService).echo(request);
    expect(received).to.have.length(1);
    expect(received[0]).to.not.equal(request);
    expect(request.message).to.equal("the caller's");
  });

  it("the caller gets a copy: changing the response leaves the handler's object and later answers alone", async function () {
    const clients = createClientFactory({ caller: "tester", tokens: server.tokens, routeFor: () => ({ kind: "in-process", lookup: server.route }) });
    const first = await clients.client(EchoService).echo({ message: "one" });
    expect(first).to.not.equal(kept);
    first.message = "changed by the caller";
    expect(kept.message).to.equal("kept by the handler");
    const second = await clients.client(EchoService).echo({ message: "two" });
    expect(second.message).to.equal("kept by the handler");
  });
});

describe("the platform client never retries", function () {
  it("sends a call that fails UNAVAILABLE CLIENT_ATTEMPTS times (once): retries are the proxies' (the contracts check counts on it)", async function () {
    const server = createQuietServer([]);
    let calls = 0;
    server.register("flaky", EchoService, {
      echo() {
        calls++;
        throw new ConnectError("down", Code.Unavailable);
      },
    });
    const clients = createClientFactory({ caller: "tester", tokens: server.tokens, routeFor: () => ({ kind: "in-process", lookup: server.route }) });
    expect((await failureOf(clients.client(EchoService).echo({ message: "once" }))).code).to.equal(Code.Unavailable);
    expect(calls).to.equal(CLIENT_ATTEMPTS).and.to.equal(1);
  });
});

describe("client factory given the topology", function () {
  // Echo stands in for a shop service: its package belongs to "echo" here.
  const topology: Topology = {
    services: {
      echo: { package: "mesh.testing.v1", replicas: 1, port: 7001, calls: [] },
      front: { package: "mesh.front.v1", replicas: 1, port: 7002, calls: ["echo"] },
      rogue: { package: "mesh.rogue.v1", replicas: 1, port: 7003, calls: [] },
    },
  };
  const factory = (caller: string) =>
    createClientFactory({ caller, tokens: testAuthority(), topology, routeFor: () => ({ kind: "in-process", lookup: () => undefined }) });

  it("refuses when the client is asked for, before any call, a service the topology does not let the caller call", function () {
    expect(() => factory("rogue").client(EchoService)).to.throw("rogue may not call echo: topology.json lets it call no service");
    expect(() => factory("stranger").client(EchoService)).to.throw("stranger may not call echo: topology.json has no service stranger");
  });

  it("gives the caller what the topology allows, and the platform's own services to anyone", function () {
    expect(factory("front").client(EchoService)).to.be.an("object");
    expect(factory("rogue").client(OpsService)).to.be.an("object");
  });
});
