// Drill: streams past their budget, unary calls untouched. Envoy's
// max_requests counts open streams, so on a shared cluster enough long-lived
// streams turned every unary call away with UNAVAILABLE. The generator gives
// streams clusters of their own (envoy/policy.ts, budgets): here the caller's
// sidecar holds Count streams (public: echo-public-streams) past that
// cluster's limit while unary Echo calls, on the echo cluster, all succeed and
// find their whole budget free. Small limits (8 and 8) make the flood 20
// streams, not thousands; the mechanism is the mesh's own.
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { grew, startDrillMesh } from "./drill-mesh.ts";
import type { DrillMesh } from "./drill-mesh.ts";

const CALLS = { maxRequests: 8, maxPendingRequests: 4 };
const STREAMS = { maxRequests: 8, maxPendingRequests: 4, maxConnections: 4 };
const FLOOD = 20;
/** Count is public: its budget is this cluster. mesh.stats("cluster.echo") reads it and the echo cluster together. */
const STREAMS_CLUSTER = "cluster.echo-public-streams";

type First = { held: true; ms: number } | { held: false; code: Code; ms: number };

interface HeldStream {
  /** Resolves when the stream's first message arrived (held), or with the code it failed with first. */
  readonly first: Promise<First>;
  readonly done: Promise<void>;
  close(): void;
}

/** A Count stream that keeps going (a number every 100 ms for far longer than the drill) until closed. */
function holdCount(mesh: DrillMesh, started: number): HeldStream {
  const abort = new AbortController();
  const client = mesh.echo();
  let resolveFirst!: (first: First) => void;
  const first = new Promise<First>((r) => (resolveFirst = r));
  const done = (async () => {
    try {
      for await (const _ of client.count({ n: 10_000, intervalMs: 100 }, { signal: abort.signal, timeoutMs: 25_000 })) {
        resolveFirst({ held: true, ms: performance.now() - started });
      }
      resolveFirst({ held: false, code: Code.Unknown, ms: performance.now() - started });
    } catch (err) {
      resolveFirst({ held: false, code: ConnectError.from(err).code, ms: performance.now() - started });
    }
  })();
  return { first, done, close: () => abort.abort() };
}

describe("mesh drill: streams past their budget never turn a unary call away", function () {
  this.timeout(60_000);
  let mesh: DrillMesh;

  before(async function () {
    mesh = await startDrillMesh({ callerLimits: CALLS, publicStreamLimits: STREAMS });
  });
  after(async function () {
    await mesh?.stop();
  });

  it(`holds ${STREAMS.maxRequests} of ${FLOOD} Count streams, turns the rest away at once, and every Echo call meanwhile succeeds`, async function () {
    // Connections up to both replicas in both clusters first: before one
    // exists, at most max_pending_requests calls may wait for it.
    const client = mesh.echo();
    for (let round = 0; round < 20; round++) {
      const stats = await mesh.stats("cluster.echo");
      if (stats.get(`${STREAMS_CLUSTER}.upstream_cx_active`) >= mesh.replicas.length && stats.get("cluster.echo.upstream_cx_active") >= mesh.replicas.length) break;
      await Promise.all([
        ...Array.from({ length: 4 }, async () => {
          for await (const _ of client.count({ n: 2, intervalMs: 20 }, { timeoutMs: 5000 }));
        }),
        ...Array.from({ length: 4 }, () => client.echo({ message: "warm", sleepMs: 20 }, { timeoutMs: 5000 })),
      ]);
    }
    const warm = await mesh.stats("cluster.echo");
    expect(warm.get(`${STREAMS_CLUSTER}.upstream_cx_active`), "stream connections before the flood").to.be.at.least(mesh.replicas.length);

    const before = await mesh.stats("cluster.echo");
    const started = performance.now();
    const streams = Array.from({ length: FLOOD }, () => holdCount(mesh, started));
    try {
      const firsts = await Promise.all(streams.map((s) => s.first));
      const held = firsts.filter((f) => f.held);
      const refused = firsts.filter((f): f is Extract<First, { held: false }> => !f.held);
      expect(held.length, "streams held").to.equal(STREAMS.maxRequests);
      expect(new Set(refused.map((r) => r.code)), "codes of the streams turned away").to.deep.equal(new Set([Code.Unavailable]));
      expect(Math.max(...refused.map((r) => r.ms)), "the slowest refusal, ms").to.be.below(1000);

      // The streams' budget is used up; the calls' budget is whole.
      const during = await mesh.stats("cluster.echo");
      expect(during.get(`${STREAMS_CLUSTER}.circuit_breakers.default.remaining_rq`), "stream slots left").to.equal(0);
      expect(during.get("cluster.echo.circuit_breakers.default.remaining_rq"), "call slots left").to.equal(CALLS.maxRequests);

      // As many concurrent calls as the calls' budget allows, then a sequence: all succeed.
      const concurrent = await Promise.allSettled(Array.from({ length: CALLS.maxRequests }, (_, n) => client.echo({ message: `beside ${n}`, sleepMs: 200 }, { timeoutMs: 5000 })));
      let sequential = 0;
      for (let n = 0; n < 40; n++) {
        await client.echo({ message: `after ${n}` }, { timeoutMs: 5000 });
        sequential++;
      }
      expect(concurrent.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).to.deep.equal([]);
      expect(sequential).to.equal(40);
      // The held streams are still streaming.
      expect((await mesh.stats("cluster.echo")).get(`${STREAMS_CLUSTER}.upstream_rq_active`), "streams still open").to.equal(STREAMS.maxRequests);

      const after = await mesh.stats("cluster.echo");
      expect(grew(before, after, "cluster.echo.upstream_rq_active_overflow") + grew(before, after, "cluster.echo.upstream_rq_pending_overflow"), "unary calls overflowed").to.equal(0);
      expect(grew(before, after, `${STREAMS_CLUSTER}.upstream_rq_active_overflow`) + grew(before, after, `${STREAMS_CLUSTER}.upstream_rq_pending_overflow`), "streams overflowed").to.equal(refused.length);
      // No proxy retries a stream.
      expect(grew(before, after, `${STREAMS_CLUSTER}.upstream_rq_retry`)).to.equal(0);
    } finally {
      for (const s of streams) s.close();
      await Promise.all(streams.map((s) => s.done));
    }
  });

  it("gives the stream slots back once the streams end: a new stream is held", async function () {
    const end = Date.now() + 5000;
    while ((await mesh.stats("cluster.echo")).get(`${STREAMS_CLUSTER}.upstream_rq_active`) > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const values: number[] = [];
    for await (const m of mesh.echo().count({ n: 3, intervalMs: 10 }, { timeoutMs: 5000 })) values.push(m.value);
    expect(values).to.have.length(3);
    expect((await mesh.stats("cluster.echo")).get(`${STREAMS_CLUSTER}.circuit_breakers.default.remaining_rq`)).to.equal(STREAMS.maxRequests);
  });
});
