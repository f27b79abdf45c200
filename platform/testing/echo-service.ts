// The EchoService implementation the platform's tests, benchmarks and mesh
// drills serve. Not part of the shop.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import { EchoService } from "../../gen/mesh/testing/v1/echo_pb.js";
import { remainingBudgetMs } from "../call-scope.ts";
import { requireCaller } from "../caller.ts";
import type { ClientFactory } from "../clients.ts";

export { EchoService };

export interface EchoOptions {
  /** Name reported in EchoResponse.instance. */
  instance: string;
  /** Clients for Relay's downstream call; Relay answers FAILED_PRECONDITION without them. */
  clients?: ClientFactory;
  /**
   * A fault for drills: every n-th Echo call, and every n-th Record call
   * (counted apart), answers UNAVAILABLE; Record only after recording its
   * side effect, as a server that fails after committing would. 1 fails every
   * call. Default 0: never.
   */
  unavailableEvery?: number;
}

export function createEchoService(options: EchoOptions): ServiceImpl<typeof EchoService> {
  let served = 0n;
  let echoCalls = 0n;
  let recordCalls = 0n;
  let recorded = 0n;
  let echoInFlight = 0;
  let echoMaxInFlight = 0;
  const every = BigInt(options.unavailableEvery ?? 0);
  const faultDue = (call: bigint) => every > 0n && call % every === 0n;
  const injected = (method: string, call: bigint) =>
    new ConnectError(`injected fault: ${options.instance} answers every ${every}. ${method} call UNAVAILABLE (this was call ${call})`, Code.Unavailable);
  const sleep = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  return {
    async echo(req) {
      const budget = remainingBudgetMs();
      const traceId = trace.getActiveSpan()?.spanContext().traceId ?? "";
      const call = ++echoCalls;
      if (faultDue(call)) throw injected("Echo", call);
      echoMaxInFlight = Math.max(echoMaxInFlight, ++echoInFlight);
      try {
        if (req.sleepMs > 0) await sleep(req.sleepMs);
      } finally {
        echoInFlight--;
      }
      served++;
      return { message: req.message, budgetMs: BigInt(Math.round(budget ?? -1)), traceId, instance: options.instance, served };
    },
    record() {
      const call = ++recordCalls;
      recorded++;
      if (faultDue(call)) throw injected("Record", call);
      return { instance: options.instance, recorded };
    },
    getCounters() {
      return {
        instance: options.instance,
        echoCalls,
        echoServed: served,
        recordCalls,
        recorded,
        echoInFlight,
        echoMaxInFlight,
      };
    },
    async relay(req) {
      const budget = remainingBudgetMs();
      if (!options.clients) throw new ConnectError("relay has no downstream configured", Code.FailedPrecondition);
      if (req.waitMs > 0) await sleep(req.waitMs);
      const downstream = await options.clients.client(EchoService).echo({ message: req.message });
      return { budgetMs: BigInt(Math.round(budget ?? -1)), downstream };
    },
    fail(req) {
      if (req.code === 0) {
        throw new Error(`unexpected failure: ${req.message} at /srv/secret/path.ts:42`);
      }
      throw new ConnectError(req.message || "requested failure", req.code as Code);
    },
    whoAmI() {
      const caller = requireCaller();
      return { kind: caller.kind, subject: caller.subject };
    },
    internal() {
      return { caller: requireCaller().subject };
    },
    async *count(req, ctx) {
      for (let i = 1; i <= req.n; i++) {
        if (req.intervalMs > 0) await sleep(req.intervalMs, ctx.signal);
        if (ctx.signal.aborted) return;
        yield { value: i };
      }
    },
    async sum(requests) {
      let sum = 0n;
      let messages = 0;
      for await (const req of requests) {
        sum += req.value;
        messages++;
        // Leaves the loop, and the rest of the request stream, unread.
        if (req.stopAbove > 0n && sum > req.stopAbove) break;
      }
      return { sum, messages };
    },
    async *chat(requests) {
      let seq = 0;
      for await (const req of requests) {
        if (req.failCode !== 0) throw new ConnectError(`chat ended by request at message ${seq + 1}`, req.failCode as Code);
        yield { text: req.text, seq: ++seq };
      }
    },
  };
}
