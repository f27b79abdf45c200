// Deadlines: the contract's default when the caller sends none, the caller's
// own when it does, and inheritance across hops so a downstream call never
// gets more time than its caller has left.
import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import type { GrpcJsCall } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

/** A W3C traceparent with a fresh trace id, so a test can find its call in the logs. */
function newTrace(): { traceId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
}

describe("deadlines", function () {
  let a: ServerProcess;
  let b: ServerProcess;
  let grpcJsA: GrpcJsCall;
  let grpcJsB: GrpcJsCall;

  before(async function () {
    b = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "b" });
    a = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "a", ECHO_DOWNSTREAM: b.url });
    grpcJsA = createGrpcJsClient(a.address);
    grpcJsB = createGrpcJsClient(b.address);
  });

  after(async function () {
    grpcJsA?.close();
    grpcJsB?.close();
    await a?.stop();
    await b?.stop();
  });

  describe("with no timeout sent, a call gets the contract's default (Echo: 2000 ms)", function () {
    const expectContractDefault = (budgetMs: bigint | number) => {
      expect(Number(budgetMs)).to.be.at.most(2000).and.above(1500);
    };

    it("through a generated Connect client", async function () {
      const res = await grpcClient(EchoService, b.url).echo({ message: "no timeout" });
      expectContractDefault(res.budgetMs);
    });

    it("through the grpc-js client", async function () {
      const res = await grpcJsB.unary(EchoService.method.echo, { message: "no timeout" });
      expectContractDefault(res.budgetMs);
    });

    it("through grpcurl", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"message":"no timeout"}', b.address, "mesh.testing.v1.EchoService/Echo"]);
      expect(res.code, res.stderr).to.equal(0);
      expectContractDefault(Number((JSON.parse(res.stdout) as { budgetMs: string }).budgetMs));
    });
  });

  describe("a caller's timeout is what the handler sees", function () {
    it("800 ms from a generated Connect client", async function () {
      const res = await grpcClient(EchoService, b.url).echo({ message: "800" }, { timeoutMs: 800 });
      expect(Number(res.budgetMs)).to.be.at.most(800).and.above(500);
    });

    it("800 ms from the grpc-js client's deadline", async function () {
      const res = await grpcJsB.unary(EchoService.method.echo, { message: "800" }, { deadlineMs: 800 });
      expect(Number(res.budgetMs)).to.be.at.most(800).and.above(500);
    });
  });

  describe("across two hops (A relays to B), B inherits what A has left", function () {
    it("through a generated Connect client: timeout 1000, A waits 300, B gets at most 700", async function () {
      const res = await grpcClient(EchoService, a.url).relay({ message: "hop", waitMs: 300 }, { timeoutMs: 1000 });
      expect(Number(res.budgetMs)).to.be.at.most(1000).and.above(700);
      expect(res.downstream?.instance).to.equal("b");
      expect(Number(res.downstream?.budgetMs)).to.be.at.most(700).and.above(0);
    });

    it("through the grpc-js client's deadline: timeout 1000, A waits 300, B gets at most 700", async function () {
      const res = await grpcJsA.unary(EchoService.method.relay, { message: "hop", waitMs: 300 }, { deadlineMs: 1000 });
      expect(Number(res.budgetMs)).to.be.at.most(1000).and.above(700);
      expect(res.downstream?.instance).to.equal("b");
      expect(Number(res.downstream?.budgetMs)).to.be.at.most(700).and.above(0);
    });

    it("a spent budget fails DEADLINE_EXCEEDED and A never calls B", async function () {
      const before = await grpcJsB.unary(EchoService.method.echo, { message: "count before" });
      const { traceId, traceparent } = newTrace();
      const started = performance.now();
      const err = await grpcJsA.unary(EchoService.method.relay, { message: "too late", waitMs: 900 }, { deadlineMs: 600, metadata: { traceparent } }).then(
        () => expect.fail("a Relay that waits 900 ms finished inside a 600 ms deadline"),
        (e: grpc.ServiceError) => e,
      );
      expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(performance.now() - started).to.be.below(900);
      const relayLine = await a.waitForLog((l) => l.msg === "rpc" && l.trace_id === traceId);
      expect(relayLine).to.include({ method: "Relay", code: "DEADLINE_EXCEEDED" });
      // A's handler keeps waiting after the call failed and reaches its
      // downstream call at ~900 ms. This Echo to B is answered at ~1200 ms,
      // after that moment: had A called B, B would have served one more.
      const after = await grpcJsB.unary(EchoService.method.echo, { message: "count after", sleepMs: 600 });
      expect(after.served).to.equal(before.served + 1n);
      expect(b.logs.filter((l) => l.trace_id === traceId)).to.deep.equal([]);
    });
  });

  describe("an Echo slower than its deadline (sleep 1500 ms, timeout 300 ms)", function () {
    // Its own process: a generated Connect client that gives up resets the
    // stream, and how the server takes that is part of what is proven here.
    let server: ServerProcess;

    before(async function () {
      server = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "slow" });
    });

    after(async function () {
      await server?.stop();
    });

    it("fails DEADLINE_EXCEEDED at the deadline through the grpc-js client", async function () {
      const { traceId, traceparent } = newTrace();
      const client = createGrpcJsClient(server.address);
      const started = performance.now();
      const err = await client
        .unary(EchoService.method.echo, { message: "slow", sleepMs: 1500 }, { deadlineMs: 300, metadata: { traceparent } })
        .then(
          () => expect.fail("a 1500 ms Echo finished inside a 300 ms deadline"),
          (e: grpc.ServiceError) => e,
        )
        .finally(() => client.close());
      expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(performance.now() - started).to.be.within(250, 800);
      const line = await server.waitForLog((l) => l.msg === "rpc" && l.trace_id === traceId);
      expect(line).to.include({ method: "Echo", code: "DEADLINE_EXCEEDED" });
      expect(line.duration_ms as number).to.be.within(250, 800);
    });

    it("fails DEADLINE_EXCEEDED at the deadline through a generated Connect client, and the server keeps serving", async function () {
      const { traceId, traceparent } = newTrace();
      const started = performance.now();
      const err = await failureOf(grpcClient(EchoService, server.url).echo({ message: "slow", sleepMs: 1500 }, { timeoutMs: 300, headers: { traceparent } }));
      expect(err.code).to.equal(Code.DeadlineExceeded);
      expect(performance.now() - started).to.be.within(250, 800);
      // The server's own record: it ended the call at its deadline.
      const line = await server.waitForLog((l) => l.msg === "rpc" && l.trace_id === traceId);
      expect(line).to.include({ method: "Echo", code: "DEADLINE_EXCEEDED" });
      expect(line.duration_ms as number).to.be.within(250, 800);
      const next = await grpcClient(EchoService, server.url).echo({ message: "still there?" });
      expect(next.message).to.equal("still there?");
    });
  });
});
