// Drill: errors Envoy can see. Envoy's gRPC retry_on conditions and its
// outlier detection read grpc-status only from response headers, so a status
// sent in trailers after a body would be invisible to them. The services send
// every error made before the first response message as Trailers-Only (one
// HEADERS frame with END_STREAM), it stays so through both sidecars, and an
// UNAVAILABLE from one replica is retried by the caller's sidecar on the other.
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { EchoRequestSchema, FailRequestSchema } from "../../gen/mesh/testing/v1/echo_pb.js";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh } from "./drill-mesh.ts";
import { rawGrpcCall } from "./raw-grpc.ts";

const ECHO = "/mesh.testing.v1.EchoService/Echo";
const FAIL = "/mesh.testing.v1.EchoService/Fail";

interface ErrorCase<I extends DescMessage = DescMessage> {
  what: string;
  path: string;
  schema: I;
  message: MessageInitShape<I>;
  headers?: Record<string, string>;
  code: Code;
}

const errorCase = <I extends DescMessage>(c: ErrorCase<I>): ErrorCase => c as unknown as ErrorCase;

describe("mesh drill: errors leave as Trailers-Only, and the caller's sidecar retries an UNAVAILABLE on the other replica", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    // echo-1 answers every Echo UNAVAILABLE; echo-0 is well.
    mesh = await startDrillMesh({ replicaEnv: [{}, { ECHO_UNAVAILABLE_EVERY: "1" }] });
  });
  after(async function () {
    await mesh?.stop();
  });

  it("sends every error made before the first message as one HEADERS frame with END_STREAM carrying grpc-status", async function () {
    const [well, broken] = mesh.replicas;
    const cases: Array<{ url: string; c: ErrorCase }> = [
      { url: broken.appUrl, c: errorCase({ what: "UNAVAILABLE thrown by the handler (injected fault)", path: ECHO, schema: EchoRequestSchema, message: { message: "x" }, code: Code.Unavailable }) },
      { url: well.appUrl, c: errorCase({ what: "a code the handler chose", path: FAIL, schema: FailRequestSchema, message: { code: Code.Unavailable }, code: Code.Unavailable }) },
      { url: well.appUrl, c: errorCase({ what: "INTERNAL for an unexpected exception", path: FAIL, schema: FailRequestSchema, message: { code: 0 }, code: Code.Internal }) },
      { url: well.appUrl, c: errorCase({ what: "INVALID_ARGUMENT from the contract's field rules", path: ECHO, schema: EchoRequestSchema, message: { sleepMs: 70_000 }, code: Code.InvalidArgument }) },
      {
        url: well.appUrl,
        c: errorCase({ what: "DEADLINE_EXCEEDED from the caller's grpc-timeout", path: ECHO, schema: EchoRequestSchema, message: { sleepMs: 1000 }, headers: { "grpc-timeout": "100m" }, code: Code.DeadlineExceeded }),
      },
      { url: well.appUrl, c: errorCase({ what: "UNIMPLEMENTED for an unknown method", path: "/mesh.testing.v1.EchoService/NoSuchMethod", schema: EchoRequestSchema, message: {}, code: Code.Unimplemented }) },
    ];
    for (const { url, c } of cases) {
      const answer = await rawGrpcCall({ baseUrl: url, path: c.path, schema: c.schema, message: c.message, headers: c.headers });
      expect({ what: c.what, endStream: answer.headersEndStream, status: answer.headers["grpc-status"], body: answer.bodyBytes, trailers: answer.trailers }).to.deep.equal({
        what: c.what,
        endStream: true,
        status: String(c.code),
        body: 0,
        trailers: undefined,
      });
      expect(answer.headers[":status"], c.what).to.equal(200);
    }
    // The helper tells the two shapes apart: an OK answer has a body, then grpc-status in trailers.
    const ok = await rawGrpcCall({ baseUrl: well.appUrl, path: ECHO, schema: EchoRequestSchema, message: { message: "fine" } });
    expect(ok.headersEndStream).to.equal(false);
    expect(ok.headers["grpc-status"]).to.equal(undefined);
    expect(ok.bodyBytes).to.be.greaterThan(5);
    expect(ok.trailers?.["grpc-status"]).to.equal("0");
  });

  it("keeps an error Trailers-Only through the inbound and the caller's sidecars (Fail has no idempotency level: not retried)", async function () {
    const before = await mesh.stats();
    const answer = await rawGrpcCall({ baseUrl: mesh.callerUrl, path: FAIL, schema: FailRequestSchema, message: { code: Code.Unavailable, message: "through two proxies" } });
    const after = await mesh.stats();
    expect(answer.headersEndStream).to.equal(true);
    expect(answer.headers["grpc-status"]).to.equal(String(Code.Unavailable));
    expect(decodeURIComponent(String(answer.headers["grpc-message"]))).to.equal("through two proxies");
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(0);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Fail.14")).to.equal(1);
  });

  it("retries an Echo that met the UNAVAILABLE replica on the other one: every call succeeds, answered by echo-0", async function () {
    const [well, broken] = mesh.replicas;
    const calls = 30;
    const client = mesh.echo();
    const before = await mesh.stats();
    const brokenBefore = await broken.counters();
    const answeredBy: string[] = [];
    for (let n = 0; n < calls; n++) answeredBy.push((await client.echo({ message: `call ${n}` }, { timeoutMs: 5000 })).instance);
    const after = await mesh.stats();
    const brokenAfter = await broken.counters();

    expect(new Set(answeredBy)).to.deep.equal(new Set([well.name]));
    // Every Echo that reached echo-1 failed there and was tried again: the
    // sidecar's retries are exactly the tries echo-1 received.
    const triesOnBroken = Number(brokenAfter.echoCalls - brokenBefore.echoCalls);
    expect(triesOnBroken, "no call met echo-1 first: the drill proved nothing").to.be.greaterThan(0);
    expect(brokenAfter.echoServed).to.equal(0n);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(triesOnBroken);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry_success")).to.be.greaterThan(0);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry_overflow")).to.equal(0);
    // What the caller saw, per method and status: only OK.
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.0")).to.equal(calls);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.14")).to.equal(0);
  });
});
