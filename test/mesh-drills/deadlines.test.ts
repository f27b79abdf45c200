// Drill: an upstream slower than the deadline. The caller gets
// DEADLINE_EXCEEDED close to its own deadline when it sends one (grpc-timeout
// shortens the route's bound), and at the contract's deadline (Echo: 2000 ms,
// the route's max_stream_duration) when it sends none: never at Envoy's
// default of 15 s, nor after however many tries fit.
// The calls here use a bare HTTP/2 client with no timer of its own, so the
// time measured is when the mesh answered, not when a client library gave up.
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { EchoRequestSchema } from "../../gen/mesh/testing/v1/echo_pb.js";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh } from "./drill-mesh.ts";
import { rawGrpcCall } from "./raw-grpc.ts";

const ECHO = "/mesh.testing.v1.EchoService/Echo";
/** Echo's deadline_ms in proto/mesh/testing/v1/echo.proto. */
const CONTRACT_DEADLINE_MS = 2000;
const CLIENT_DEADLINE_MS = 300;
/** How late an answer may come: the proxies' timers, and a busy machine. */
const SLACK_MS = 150;

describe("mesh drill: an upstream slower than the deadline", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    mesh = await startDrillMesh();
  });
  after(async function () {
    await mesh?.stop();
  });

  it(`answers DEADLINE_EXCEEDED at the caller's own ${CLIENT_DEADLINE_MS} ms deadline, without a retry`, async function () {
    const before = await mesh.stats();
    const answer = await rawGrpcCall({
      baseUrl: mesh.callerUrl,
      path: ECHO,
      schema: EchoRequestSchema,
      message: { message: "slow", sleepMs: 5000 },
      headers: { "grpc-timeout": `${CLIENT_DEADLINE_MS}m` },
    });
    const after = await mesh.stats();
    expect(answer.grpcStatus).to.equal(Code.DeadlineExceeded);
    expect(answer.headersEndStream, "Trailers-Only").to.equal(true);
    expect(answer.elapsedMs).to.be.within(CLIENT_DEADLINE_MS - 20, CLIENT_DEADLINE_MS + SLACK_MS);
    // deadline-exceeded is not a retry condition: the caller's budget is spent.
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(0);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.4")).to.equal(1);
  });

  it(`answers DEADLINE_EXCEEDED at the contract's ${CONTRACT_DEADLINE_MS} ms when the caller sends no deadline, not at Envoy's 15 s`, async function () {
    const before = await mesh.stats("");
    const answer = await rawGrpcCall({ baseUrl: mesh.callerUrl, path: ECHO, schema: EchoRequestSchema, message: { message: "slow", sleepMs: 5000 } });
    const after = await mesh.stats("");
    expect(answer.grpcStatus).to.equal(Code.DeadlineExceeded);
    expect(answer.headersEndStream, "Trailers-Only").to.equal(true);
    expect(answer.elapsedMs).to.be.within(CONTRACT_DEADLINE_MS - 20, CONTRACT_DEADLINE_MS + SLACK_MS);
    // The caller's sidecar ended the call at the route's max_stream_duration
    // (the contract's deadline), after the first try ran out of its per-try
    // share (half the deadline) and a second replica was tried: a hung
    // replica leaves time for another.
    expect(grew(before, after, "http.outbound.downstream_rq_max_duration_reached")).to.equal(1);
    expect(grew(before, after, "cluster.echo.upstream_rq_per_try_timeout")).to.equal(1);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(1);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.4")).to.equal(1);
  });
});
