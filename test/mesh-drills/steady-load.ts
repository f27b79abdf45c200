// A steady, open-loop stream of calls: call n starts at n / rate seconds
// whatever happened to the calls before it, the way independent clients
// arrive. Bounded in count (rate × duration) and, through each call's own
// deadline, in time. If this process falls behind (a busy machine can stall
// its event loop for hundreds of milliseconds), the stream slips rather than
// catching up in one burst: at most twice the rate is ever started.
import { ConnectError } from "@connectrpc/connect";

export interface CallOutcome {
  readonly n: number;
  /** When the call started, in ms since the load began. */
  readonly startedMs: number;
  readonly elapsedMs: number;
  /** The gRPC code; 0 is OK. */
  readonly code: number;
  /** What the call answered (e.g. the instance), or the error message. */
  readonly detail: string;
}

export interface SteadyLoadOptions {
  ratePerSecond: number;
  durationMs: number;
  /** One call; resolves with something to keep about the answer. Must be bounded by its own deadline. */
  call(n: number): Promise<string>;
  /** Runs once when call number `atCall` has been started (a fault injected mid-load). */
  during?: { atCall: number; run(): Promise<void> | void };
}

export interface SteadyLoadResult {
  readonly outcomes: readonly CallOutcome[];
  /** When `during` ran, in ms since the load began. */
  readonly duringAtMs: number | undefined;
}

const TICK_MS = 5;

export function driveSteadily(options: SteadyLoadOptions): Promise<SteadyLoadResult> {
  const total = Math.floor((options.ratePerSecond * options.durationMs) / 1000);
  if (total < 1) throw new Error("a steady load of no calls");
  const start = performance.now();
  const calls: Array<Promise<CallOutcome>> = [];
  let duringAtMs: number | undefined;
  let duringRun: Promise<void> | undefined;

  const issue = (n: number) => {
    const startedMs = performance.now() - start;
    calls.push(
      options.call(n).then(
        (detail) => ({ n, startedMs, elapsedMs: performance.now() - start - startedMs, code: 0, detail }),
        (err: unknown) => {
          const e = ConnectError.from(err);
          return { n, startedMs, elapsedMs: performance.now() - start - startedMs, code: e.code as number, detail: e.rawMessage };
        },
      ),
    );
    if (options.during && n === options.during.atCall) {
      duringAtMs = startedMs;
      duringRun = Promise.resolve(options.during.run());
    }
  };

  const perTick = Math.max(1, Math.ceil((2 * options.ratePerSecond * TICK_MS) / 1000));
  let lastTick = start;
  let credit = 0;
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const now = performance.now();
      // Calls owed since the last tick, never more than a burst of twice the rate.
      credit = Math.min(credit + ((now - lastTick) * options.ratePerSecond) / 1000, perTick);
      lastTick = now;
      while (credit >= 1 && calls.length < total) {
        issue(calls.length);
        credit--;
      }
      if (calls.length >= total) {
        clearInterval(timer);
        Promise.all([Promise.all(calls), duringRun]).then(([outcomes]) => resolve({ outcomes, duringAtMs }), reject);
      }
    }, TICK_MS);
  });
}

/** Outcomes that were not OK, one line each, for an assertion message. */
export function describeFailures(outcomes: readonly CallOutcome[], limit = 10): string {
  const failed = outcomes.filter((o) => o.code !== 0);
  const lines = failed.slice(0, limit).map((o) => `call ${o.n} at ${o.startedMs.toFixed(0)} ms: code ${o.code} after ${o.elapsedMs.toFixed(0)} ms: ${o.detail}`);
  return `${failed.length} of ${outcomes.length} calls failed${failed.length > limit ? ` (first ${limit})` : ""}:\n  ${lines.join("\n  ")}`;
}
