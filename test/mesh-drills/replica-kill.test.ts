// Drill: one of two replicas is killed with SIGKILL while a client drives a
// steady stream of idempotent calls through its sidecar. The calls that were
// in flight on the dead replica, and those routed to it before Envoy noticed,
// come back UNAVAILABLE from its inbound sidecar (Trailers-Only) and are
// retried by the caller's sidecar on the other replica; the dead one fails
// its health checks (and is ejected by outlier detection when enough calls
// met it first). The client sees no failure at all.
import { expect } from "chai";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh } from "./drill-mesh.ts";
import { describeFailures, driveSteadily } from "./steady-load.ts";

const RATE = 200;
const DURATION_MS = 6000;
/** The kill comes a third of the way in: 2 s of calls before it, 4 s after. */
const KILL_AT_CALL = (RATE * DURATION_MS) / 1000 / 3;

describe("mesh drill: kill -9 one of two replicas under a steady stream of idempotent calls", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    mesh = await startDrillMesh();
  });
  after(async function () {
    await mesh?.stop();
  });

  it(`fails none of ${(RATE * DURATION_MS) / 1000} Echo calls at ${RATE}/s; Envoy's stats show the retries and the failed health checks`, async function () {
    const [survivor, victim] = mesh.replicas;
    const client = mesh.echo();
    const before = await mesh.stats();
    const { outcomes, duringAtMs } = await driveSteadily({
      ratePerSecond: RATE,
      durationMs: DURATION_MS,
      call: async (n) => (await client.echo({ message: `steady ${n}` }, { timeoutMs: 2000 })).instance,
      during: { atCall: KILL_AT_CALL, run: () => victim.app.kill("SIGKILL") },
    });
    const after = await mesh.stats();

    expect(victim.app.running()).to.equal(false);
    expect(outcomes.filter((o) => o.code !== 0), describeFailures(outcomes)).to.deep.equal([]);
    // Both replicas were in rotation before the kill; only the survivor answered after it.
    const beforeKill = outcomes.filter((o) => o.startedMs < duringAtMs!);
    expect(beforeKill.filter((o) => o.detail === victim.name).length, `${victim.name} answered nothing before the kill`).to.be.greaterThan(0);
    const lateOnes = outcomes.filter((o) => o.startedMs > duringAtMs! + 100);
    expect(new Set(lateOnes.map((o) => o.detail))).to.deep.equal(new Set([survivor.name]));

    const stat = (name: string) => grew(before, after, `cluster.echo.${name}`);
    const seen = `the caller's sidecar counted: ${[...after.all]
      .filter(([k, v]) => v !== before.get(k) && /retry|outlier|health_check\.failure|membership_healthy/.test(k))
      .map(([k]) => `${k.slice("cluster.echo.".length)} ${stat(k.slice("cluster.echo.".length))}`)
      .join(", ")}`;
    // Calls that met the dead replica were tried again, on the survivor, within the retry budget.
    expect(stat("upstream_rq_retry"), seen).to.be.greaterThan(0);
    expect(stat("upstream_rq_retry_success"), seen).to.be.greaterThan(0);
    expect(stat("upstream_rq_retry_overflow"), seen).to.equal(0);
    // The dead replica left rotation: its sidecar answers the health checks
    // UNAVAILABLE, and, when enough calls met it first, outlier detection
    // ejected it for its gateway failures (whichever came first).
    expect(stat("health_check.failure"), seen).to.be.greaterThan(0);
    expect(after.get("cluster.echo.membership_healthy"), seen).to.equal(1);
    expect(stat("grpc.mesh.testing.v1.EchoService.Echo.0"), seen).to.equal(outcomes.length);
  });
});
