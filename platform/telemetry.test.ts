// Telemetry: Prometheus metrics on /metrics, one JSON log line per RPC, W3C
// trace context continued from the caller and carried across hops, and
// sensitive fields kept out of every log line.
import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { LogLine, ServerProcess } from "../test/support/process.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; 0 when absent. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length, `${name}${JSON.stringify(labels)} matched ${found.length} samples`).to.be.at.most(1);
  return found[0]?.value ?? 0;
}

async function scrape(server: ServerProcess): Promise<Sample[]> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).to.equal(200);
  expect(res.headers.get("content-type")).to.match(/^text\/plain/);
  return parseMetrics(await res.text());
}

function newTrace(): { traceId: string; parentSpanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  const parentSpanId = randomBytes(8).toString("hex");
  return { traceId, parentSpanId, traceparent: `00-${traceId}-${parentSpanId}-01` };
}

const rpcLineOf = (server: ServerProcess, traceId: string) => server.waitForLog((l) => l.msg === "rpc" && l.trace_id === traceId);

const ECHO = { service: "mesh.testing.v1.EchoService", method: "Echo" };
const FAIL = { service: "mesh.testing.v1.EchoService", method: "Fail" };

describe("telemetry", function () {
  let a: ServerProcess;
  let b: ServerProcess;

  before(async function () {
    b = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "b", LOG_BODIES: "1" });
    a = await startServerProcess("test/fixtures/echo-server.ts", {
      ECHO_INSTANCE: "a",
      ECHO_DOWNSTREAM: b.url,
      LOG_BODIES: "1",
    });
  });

  after(async function () {
    await a?.stop();
    await b?.stop();
  });

  describe("/metrics", function () {
    it("counts each Echo exactly once and each failed call under its code, with a latency histogram", async function () {
      const client = grpcClient(EchoService, a.url);
      const before = await scrape(a);
      const echoes = 7;
      const fails = 3;
      for (let i = 0; i < echoes; i++) await client.echo({ message: `n${i}` });
      for (let i = 0; i < fails; i++) expect((await failureOf(client.fail({ code: 5, message: "gone" }))).code).to.equal(Code.NotFound);
      const after = await scrape(a);

      const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
      expect(delta("rpc_server_requests_total", ECHO)).to.equal(echoes);
      expect(delta("rpc_server_handled_total", { ...ECHO, code: "OK" })).to.equal(echoes);
      expect(delta("rpc_server_requests_total", FAIL)).to.equal(fails);
      expect(delta("rpc_server_handled_total", { ...FAIL, code: "NOT_FOUND" })).to.equal(fails);
      expect(delta("rpc_server_handled_total", { ...FAIL, code: "OK" })).to.equal(0);
      expect(delta("rpc_server_duration_seconds_count", ECHO)).to.equal(echoes);
      expect(delta("rpc_server_duration_seconds_bucket", { ...ECHO, le: "+Inf" })).to.equal(echoes);
      const buckets = after.filter((s) => s.name === "rpc_server_duration_seconds_bucket" && s.labels.method === "Echo");
      expect(buckets.map((s) => s.labels.le)).to.include.members(["0.001", "0.1", "1", "10", "+Inf"]);
    });

    it("shows a call in flight on rpc_server_in_flight while it runs, and not after", async function () {
      const call = grpcClient(EchoService, a.url).echo({ message: "in flight", sleepMs: 500 });
      // Scrape until the server has the call (it sleeps for half a second).
      let during = 0;
      const giveUpAt = performance.now() + 3000;
      while (during === 0 && performance.now() < giveUpAt) during = valueOf(await scrape(a), "rpc_server_in_flight", ECHO);
      expect(during).to.equal(1);
      await call;
      expect(valueOf(await scrape(a), "rpc_server_in_flight", ECHO)).to.equal(0);
    });

    it("includes the process and event-loop metrics", async function () {
      const names = new Set((await scrape(a)).map((s) => s.name));
      expect([...names].filter((n) => n.startsWith("nodejs_eventloop_lag"))).to.include.members(["nodejs_eventloop_lag_seconds", "nodejs_eventloop_lag_p99_seconds"]);
      expect([...names].filter((n) => n.startsWith("process_cpu"))).to.include.members(["process_cpu_user_seconds_total", "process_cpu_system_seconds_total"]);
    });
  });

  describe("logs and traces", function () {
    it("logs one JSON line per RPC with service, method, code, duration, trace and span ids and peer", async function () {
      const { traceId, traceparent } = newTrace();
      await grpcClient(EchoService, a.url).echo({ message: "log me" }, { headers: { traceparent } });
      await rpcLineOf(a, traceId);
      const lines = a.logs.filter((l) => l.trace_id === traceId);
      expect(lines).to.have.length(1);
      const line = lines[0];
      expect(line).to.include({ level: "info", msg: "rpc", service: "mesh.testing.v1.EchoService", method: "Echo", code: "OK" });
      expect(line.duration_ms).to.be.a("number").and.at.least(0);
      expect(line.span_id).to.match(/^[0-9a-f]{16}$/);
      expect(line.peer).to.match(/^127\.0\.0\.1:\d+$/);
    });

    it("logs the code of a failed call", async function () {
      const { traceId, traceparent } = newTrace();
      await failureOf(grpcClient(EchoService, a.url).fail({ code: 5, message: "gone" }, { headers: { traceparent } }));
      expect(await rpcLineOf(a, traceId)).to.include({ method: "Fail", code: "NOT_FOUND", message: "gone" });
    });

    describe("continues a caller's traceparent: the log line and EchoResponse.traceId carry its trace id", function () {
      const expectContinued = (line: LogLine, responseTraceId: string, trace: ReturnType<typeof newTrace>) => {
        expect(line.trace_id).to.equal(trace.traceId);
        expect(responseTraceId).to.equal(trace.traceId);
        // The server's span is a child of the caller's, not the caller's own.
        expect(line.span_id).to.not.equal(trace.parentSpanId);
      };

      it("from a generated Connect client", async function () {
        const trace = newTrace();
        const res = await grpcClient(EchoService, a.url).echo({ message: "traced" }, { headers: { traceparent: trace.traceparent } });
        expectContinued(await rpcLineOf(a, trace.traceId), res.traceId, trace);
      });

      it("from the grpc-js client", async function () {
        const trace = newTrace();
        const client = createGrpcJsClient(a.address);
        try {
          const res = await client.unary(EchoService.method.echo, { message: "traced" }, { metadata: { traceparent: trace.traceparent } });
          expectContinued(await rpcLineOf(a, trace.traceId), res.traceId, trace);
        } finally {
          client.close();
        }
      });

      it("from grpcurl", async function () {
        const trace = newTrace();
        const res = await grpcurl(["-plaintext", "-rpc-header", `traceparent: ${trace.traceparent}`, "-d", '{"message":"traced"}', a.address, "mesh.testing.v1.EchoService/Echo"]);
        expect(res.code, res.stderr).to.equal(0);
        expectContinued(await rpcLineOf(a, trace.traceId), (JSON.parse(res.stdout) as { traceId: string }).traceId, trace);
      });
    });

    it("starts a fresh trace when the caller sends none, and answers with its id", async function () {
      const res = await grpcClient(EchoService, a.url).echo({ message: "untraced" });
      expect(res.traceId).to.match(/^[0-9a-f]{32}$/);
      expect(await rpcLineOf(a, res.traceId)).to.include({ method: "Echo" });
    });

    it("carries one trace id across both processes of a Relay", async function () {
      const trace = newTrace();
      const res = await grpcClient(EchoService, a.url).relay({ message: "two hops" }, { headers: { traceparent: trace.traceparent } });
      expect(res.downstream?.traceId).to.equal(trace.traceId);
      const relayLine = await rpcLineOf(a, trace.traceId);
      const echoLine = await rpcLineOf(b, trace.traceId);
      expect(relayLine).to.include({ method: "Relay", code: "OK", app: "a" });
      expect(echoLine).to.include({ method: "Echo", code: "OK", app: "b" });
      expect(echoLine.span_id).to.not.equal(relayLine.span_id);
    });

    it("carries A's own trace id to B when the caller sent none", async function () {
      const res = await grpcClient(EchoService, a.url).relay({ message: "two hops, fresh trace" });
      const traceId = res.downstream!.traceId;
      expect(traceId).to.match(/^[0-9a-f]{32}$/);
      expect(await rpcLineOf(a, traceId)).to.include({ method: "Relay" });
      expect(await rpcLineOf(b, traceId)).to.include({ method: "Echo" });
    });
  });

  describe("with LOG_BODIES=1", function () {
    it("logs the request body with the sensitive field redacted, and no line anywhere holds the secret", async function () {
      const trace = newTrace();
      await grpcClient(EchoService, a.url).echo({ message: "with a secret", secret: "hunter2-sensitive" }, { headers: { traceparent: trace.traceparent } });
      const line = await rpcLineOf(a, trace.traceId);
      expect(line.request).to.deep.equal({ message: "with a secret", secret: "[REDACTED]" });
      for (const server of [a, b]) {
        const leaks = server.logs.filter((l) => JSON.stringify(l).includes("hunter2"));
        expect(leaks).to.deep.equal([]);
      }
    });

    it("keeps the secret out of the logs of a failed call too", async function () {
      const trace = newTrace();
      const err = await failureOf(
        grpcClient(EchoService, a.url).echo({ message: "x".repeat(10_001), secret: "hunter2-sensitive" }, { headers: { traceparent: trace.traceparent } }),
      );
      expect(err.code).to.equal(Code.InvalidArgument);
      const line = await rpcLineOf(a, trace.traceId);
      expect((line.request as { secret?: string }).secret).to.equal("[REDACTED]");
      expect(a.logs.filter((l) => JSON.stringify(l).includes("hunter2"))).to.deep.equal([]);
    });
  });
});
