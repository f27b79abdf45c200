// Drill: one replica answers UNAVAILABLE to every second call. Idempotent
// calls (Echo, NO_SIDE_EFFECTS) all succeed, retried by the caller's sidecar;
// a call with no idempotency level (Record, which records a side effect and
// only then fails) is never repeated: its side effect happens exactly once per
// call, and the caller sees the UNAVAILABLE instead.
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh } from "./drill-mesh.ts";

const CALLS = 60;

describe("mesh drill: a replica answers UNAVAILABLE to half its calls", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    mesh = await startDrillMesh({ replicaEnv: [{}, { ECHO_UNAVAILABLE_EVERY: "2" }] });
  });
  after(async function () {
    await mesh?.stop();
  });

  it(`succeeds on all ${CALLS} idempotent Echo calls, the failed tries retried on the other replica`, async function () {
    const flaky = mesh.replicas[1];
    const client = mesh.echo();
    const before = await mesh.stats();
    const flakyBefore = await flaky.counters();
    const answers = [];
    for (let n = 0; n < CALLS; n++) answers.push(await client.echo({ message: `idempotent ${n}` }, { timeoutMs: 5000 }));
    const after = await mesh.stats();
    const flakyAfter = await flaky.counters();

    expect(answers).to.have.length(CALLS);
    const failedOnFlaky = Number(flakyAfter.echoCalls - flakyBefore.echoCalls - (flakyAfter.echoServed - flakyBefore.echoServed));
    expect(failedOnFlaky, `${flaky.name} failed no Echo: the drill proved nothing`).to.be.greaterThan(0);
    // Every UNAVAILABLE try was retried, and the retry succeeded.
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(failedOnFlaky);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry_success")).to.equal(failedOnFlaky);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.0")).to.equal(CALLS);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Echo.14")).to.equal(0);
    // Failures alternate with successes on the flaky replica: never three in a row, so it stays in rotation.
    expect(after.get("cluster.echo.outlier_detection.ejections_active")).to.equal(0);
  });

  it(`never repeats a non-idempotent Record: ${CALLS} calls record exactly ${CALLS} side effects, and the caller sees the UNAVAILABLEs`, async function () {
    const client = mesh.echo();
    const before = await mesh.stats();
    const countersBefore = await Promise.all(mesh.replicas.map((r) => r.counters()));
    /** 0 for OK, else the gRPC code. */
    const codes: number[] = [];
    for (let n = 0; n < CALLS; n++) {
      codes.push(
        await client.record({ note: `side effect ${n}` }, { timeoutMs: 5000 }).then(
          () => 0,
          (err: unknown) => ConnectError.from(err).code as number,
        ),
      );
    }
    const after = await mesh.stats();
    const countersAfter = await Promise.all(mesh.replicas.map((r) => r.counters()));

    const recorded = countersAfter.reduce((sum, c, i) => sum + Number(c.recorded - countersBefore[i].recorded), 0);
    const received = countersAfter.reduce((sum, c, i) => sum + Number(c.recordCalls - countersBefore[i].recordCalls), 0);
    const unavailable = codes.filter((c) => c === Code.Unavailable).length;
    expect(recorded, "side effects recorded across both replicas").to.equal(CALLS);
    expect(received, "Record calls that reached a replica").to.equal(CALLS);
    expect(unavailable, "no Record met the flaky replica's fault: the drill proved nothing").to.be.greaterThan(0);
    expect(codes.filter((c) => c !== 0 && c !== Code.Unavailable)).to.deep.equal([]);
    // Envoy's view: no retry at all while only Record was called, and each
    // UNAVAILABLE the caller saw is one Envoy passed through as it was.
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(0);
    expect(grew(before, after, "cluster.echo.upstream_rq_total")).to.equal(CALLS);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Record.14")).to.equal(unavailable);
    expect(grew(before, after, "cluster.echo.grpc.mesh.testing.v1.EchoService.Record.0")).to.equal(CALLS - unavailable);
  });
});
