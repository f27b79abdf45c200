// Drill: flood one upstream past its circuit breakers. More slow calls at
// once than the caller's cluster allows: the excess fails at once with
// UNAVAILABLE instead of queueing behind the slow ones, the queue of calls
// waiting for a connection never holds more than max_pending_requests, the
// replicas never hold more than max_requests calls between them, and the
// breaker closes again afterwards. The drill mesh uses small limits (the
// generator's policy input, callerLimits) so a flood is 40 calls, not
// hundreds; the mechanism is the mesh's own.
//
// Envoy counts the two breakers apart: upstream_rq_pending_overflow for
// calls turned away because max_pending_requests calls already wait for a
// connection (over HTTP/2 that happens only while a connection is being
// made), upstream_rq_active_overflow for calls turned away because
// max_requests are in flight.
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh, Stats } from "./drill-mesh.ts";

const LIMITS = { maxRequests: 8, maxPendingRequests: 4 };
const FLOOD = 40;
/** Slow, but within a try's share of Echo's deadline (1000 ms), so no slow call is retried. */
const SLOW_MS = 700;
/** "At once": an overflowed call answers long before a slow one could. */
const FAST_MS = 400;

interface Flood {
  readonly ok: ReadonlyArray<{ ms: number }>;
  readonly failed: ReadonlyArray<{ code: number; ms: number }>;
  /** The caller's stats once the turned-away calls had answered, while the slow ones still ran. */
  readonly during: Stats;
  /** Echo calls in the replicas' handlers at that moment, summed: every admitted call sleeps through it, so the two samples see one instant. */
  readonly inFlightDuring: number;
}

/** FLOOD concurrent slow Echo calls through the caller's sidecar, on one HTTP/2 connection. */
async function flood(mesh: DrillMesh): Promise<Flood> {
  const client = mesh.echo();
  const started = performance.now();
  let settled = 0;
  const calls = Array.from({ length: FLOOD }, (_, n) =>
    client.echo({ message: `flood ${n}`, sleepMs: SLOW_MS }, { timeoutMs: 5000 }).then(
      () => ({ code: 0, ms: performance.now() - started }),
      (err: unknown) => ({ code: ConnectError.from(err).code as number, ms: performance.now() - started }),
    ),
  );
  for (const c of calls) void c.then(() => settled++);
  const turnedAway = FLOOD - LIMITS.maxRequests - LIMITS.maxPendingRequests;
  const end = Date.now() + SLOW_MS / 2;
  while (settled < turnedAway && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  const during = await mesh.stats();
  const inFlightDuring = (await Promise.all(mesh.replicas.map((r) => r.counters()))).reduce((sum, c) => sum + c.echoInFlight, 0);
  const results = await Promise.all(calls);
  return { ok: results.filter((r) => r.code === 0), failed: results.filter((r) => r.code !== 0), during, inFlightDuring };
}

function expectFastFailures(f: Flood): void {
  expect(f.ok.length, "calls that got through").to.be.at.most(LIMITS.maxRequests).and.greaterThan(0);
  expect(f.failed.length, "calls turned away").to.be.at.least(FLOOD - LIMITS.maxRequests - LIMITS.maxPendingRequests);
  expect(new Set(f.failed.map((r) => r.code))).to.deep.equal(new Set([Code.Unavailable]));
  expect(Math.max(...f.failed.map((r) => r.ms)), "the slowest turned-away call, ms").to.be.below(FAST_MS);
  expect(Math.min(...f.ok.map((r) => r.ms)), "the fastest call that got through, ms").to.be.at.least(SLOW_MS);
}

describe("mesh drill: flood one upstream past its circuit-breaker limits", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    mesh = await startDrillMesh({ callerLimits: LIMITS });
  });
  after(async function () {
    await mesh?.stop();
  });

  it(`before any connection to the replicas exists, lets ${LIMITS.maxPendingRequests} calls wait for one and turns the rest away at once`, async function () {
    const before = await mesh.stats();
    const f = await flood(mesh);
    const after = await mesh.stats();
    expectFastFailures(f);
    expect(f.ok.length, "calls that waited for a connection").to.be.at.most(LIMITS.maxPendingRequests);
    const pending = grew(before, after, "cluster.echo.upstream_rq_pending_overflow");
    expect(pending, "upstream_rq_pending_overflow").to.be.greaterThan(0);
    expect(pending + grew(before, after, "cluster.echo.upstream_rq_active_overflow")).to.equal(f.failed.length);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(0);
  });

  it(`with connections up, keeps ${LIMITS.maxRequests} calls in flight and turns the rest away at once; the replicas never hold more`, async function () {
    // The first flood may have connected to one replica only: call until both have answered.
    const client = mesh.echo();
    const answered = new Set<string>();
    for (let n = 0; n < 50 && answered.size < mesh.replicas.length; n++) answered.add((await client.echo({ message: "warm" }, { timeoutMs: 5000 })).instance);
    expect(answered.size, "replicas reached before the flood").to.equal(mesh.replicas.length);
    const before = await mesh.stats();
    const f = await flood(mesh);
    const after = await mesh.stats();
    expectFastFailures(f);
    // Envoy's view: every turned-away call is an overflow, none retried.
    const active = grew(before, after, "cluster.echo.upstream_rq_active_overflow");
    expect(active, "upstream_rq_active_overflow").to.be.greaterThan(0);
    expect(active + grew(before, after, "cluster.echo.upstream_rq_pending_overflow")).to.equal(f.failed.length);
    expect(grew(before, after, "cluster.echo.upstream_rq_retry")).to.equal(0);
    expect(f.during.get("cluster.echo.circuit_breakers.default.rq_open"), "rq_open during the flood").to.equal(1);
    expect(f.during.get("cluster.echo.circuit_breakers.default.remaining_rq"), "remaining_rq during the flood").to.equal(0);
    // The upstream's view: never more than max_requests calls in its handlers
    // at once. Across the replicas at one instant (the sample while every
    // admitted call sleeps); each replica's own peak since it started can only
    // be lower (summing the peaks would add maxima of different moments).
    expect(f.inFlightDuring, "Echo calls in the replicas' handlers during the flood, summed").to.be.at.most(LIMITS.maxRequests).and.greaterThan(0);
    const counters = await Promise.all(mesh.replicas.map((r) => r.counters()));
    for (const c of counters) expect(c.echoMaxInFlight, `${c.instance}: its peak concurrent Echo calls`).to.be.at.most(LIMITS.maxRequests);
    expect(counters.reduce((sum, c) => sum + c.echoInFlight, 0)).to.equal(0);
  });

  it("closes the breaker once the slow calls are done: the next call goes through", async function () {
    const res = await mesh.echo().echo({ message: "after the flood" }, { timeoutMs: 5000 });
    expect(mesh.replicas.map((r) => r.name)).to.include(res.instance);
    const stats = await mesh.stats();
    expect(stats.get("cluster.echo.circuit_breakers.default.rq_open")).to.equal(0);
    expect(stats.get("cluster.echo.circuit_breakers.default.remaining_rq")).to.equal(LIMITS.maxRequests);
  });
});
