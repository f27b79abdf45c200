// A payment provider simulated in memory, standing in for a remote one: it
// answers after a configurable latency, fails at a configurable rate, can be
// taken down, and keeps every answer by idempotency key the way real
// providers do. Its configuration can change while it runs, so tests and
// drills can slow it or take it down.
//
// Configuration from the environment (simulatedProviderConfigFromEnv):
//   PAYMENT_PROVIDER_LATENCY_MS          delay before each answer, default 20
//   PAYMENT_PROVIDER_FAILURE_RATE        0..1, the share of calls that fail with
//                                        "service unavailable" (nothing done), default 0
//   PAYMENT_PROVIDER_DECLINE_OVER_MINOR  authorizations above this amount (minor
//                                        units) are declined "amount over limit", default 500000
// Test payment methods (TEST_PAYMENT_METHODS, the closed set the contracts'
// payment_method rules list): "pm_card_ok" is approved, "pm_card_declined" is
// always declined "card declined", "pm_card_insufficient_funds" is declined
// "insufficient funds". Any other method is declined "unknown payment method",
// never approved: the RPCs refuse one before it gets here, and an event that
// still carries one cancels its order instead of charging an unknown card.
import { createHash, randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { ProviderRejectedError, ProviderUnavailableError } from "./payment-provider.ts";
import type { AuthorizationRequest, AuthorizeRequest, AuthorizeResult, PaymentProvider } from "./payment-provider.ts";

export interface SimulatedProviderConfig {
  /** Milliseconds before each answer. Default 20. */
  latencyMs: number;
  /** Share of calls (0..1) that fail after the latency with nothing done. Default 0. */
  failureRate: number;
  /** Authorizations for more than this many minor units are declined. Default 500000. */
  declineOverMinor: number;
  /** When true every call fails at once, like a refused connection. Default false. */
  down: boolean;
}

export type ProviderOperation = "authorize" | "capture" | "void" | "refund";

export interface ProviderCall {
  readonly operation: ProviderOperation;
  readonly idempotencyKey: string;
  /** "replayed" when the key had been answered before and nothing was done again. */
  readonly result: "approved" | "declined" | "done" | "replayed" | "unavailable" | "rejected";
}

/** Calls received (whatever became of them) and effects performed, each effect once per key. */
export interface ProviderCounts {
  calls: number;
  authorizations: number;
  declines: number;
  captures: number;
  voids: number;
  refunds: number;
}

export interface SimulatedProvider extends PaymentProvider {
  readonly config: Readonly<SimulatedProviderConfig>;
  /** Changes the configuration from the next call on; calls already waiting keep their latency. */
  configure(changes: Partial<SimulatedProviderConfig>): void;
  counts(): ProviderCounts;
  /** The latest calls (see keepCalls) in arrival order. */
  readonly calls: readonly ProviderCall[];
}

/** Every payment method the simulated provider knows, with its decline reason (undefined: approved). */
export const TEST_PAYMENT_METHODS: Readonly<Record<string, string | undefined>> = Object.freeze({
  pm_card_ok: undefined,
  pm_card_declined: "card declined",
  pm_card_insufficient_funds: "insufficient funds",
});

export const DEFAULT_SIMULATED_PROVIDER_CONFIG: Readonly<SimulatedProviderConfig> = {
  latencyMs: 20,
  failureRate: 0,
  declineOverMinor: 500_000,
  down: false,
};

export interface SimulatedProviderOptions {
  /** Source of randomness for the failure rate, in [0, 1). Default Math.random. */
  random?: () => number;
  /** How many of the latest calls `calls` keeps, so a long-running process stays bounded. Default 10000. */
  keepCalls?: number;
}

interface Authorization {
  readonly amountMinor: bigint;
  status: "authorized" | "captured" | "voided";
  capturedMinor: bigint;
  refundedMinor: bigint;
}

interface KeptAnswer {
  readonly fingerprint: string;
  readonly answer: AuthorizeResult | undefined;
}

export function createSimulatedProvider(config: Partial<SimulatedProviderConfig> = {}, options: SimulatedProviderOptions = {}): SimulatedProvider {
  const random = options.random ?? Math.random;
  const keepCalls = options.keepCalls ?? 10_000;
  let current = checked({ ...DEFAULT_SIMULATED_PROVIDER_CONFIG, ...config });
  const authorizations = new Map<string, Authorization>();
  const answers = new Map<string, KeptAnswer>();
  const calls: ProviderCall[] = [];
  const counts: ProviderCounts = { calls: 0, authorizations: 0, declines: 0, captures: 0, voids: 0, refunds: 0 };

  // Every operation goes through here: the latency and failures happen before
  // anything is done, so an unavailable answer always means "nothing done".
  // The effect itself runs synchronously after the wait, so two concurrent
  // calls with one key cannot both perform it. The caller's abort signal is
  // deliberately ignored: a remote provider keeps working after the caller
  // stopped waiting.
  async function call(operation: ProviderOperation, key: string, request: Record<string, unknown>, effect: () => AuthorizeResult | undefined) {
    counts.calls++;
    const record = (result: ProviderCall["result"]) => {
      calls.push({ operation, idempotencyKey: key, result });
      if (calls.length > keepCalls) calls.splice(0, calls.length - keepCalls);
    };
    const settings = current;
    if (settings.down) {
      record("unavailable");
      throw new ProviderUnavailableError("connection refused");
    }
    if (settings.latencyMs > 0) await delay(settings.latencyMs);
    if (settings.failureRate > 0 && random() < settings.failureRate) {
      record("unavailable");
      throw new ProviderUnavailableError("service unavailable");
    }
    const fingerprint = fingerprintOf(operation, request);
    const kept = answers.get(key);
    if (kept) {
      if (kept.fingerprint !== fingerprint) {
        record("rejected");
        throw new ProviderRejectedError(`idempotency key ${key} was used for a different request`);
      }
      record("replayed");
      return kept.answer;
    }
    let answer: AuthorizeResult | undefined;
    try {
      answer = effect();
    } catch (err) {
      record("rejected");
      throw err;
    }
    answers.set(key, { fingerprint, answer });
    record(answer === undefined ? "done" : answer.outcome);
    return answer;
  }

  function authorizationOf(providerRef: string): Authorization {
    const auth = authorizations.get(providerRef);
    if (!auth) throw new ProviderRejectedError(`no authorization ${providerRef}`);
    return auth;
  }

  return {
    get config() {
      return current;
    },
    configure(changes) {
      current = checked({ ...current, ...changes });
    },
    counts: () => ({ ...counts }),
    calls,

    async authorize(request: AuthorizeRequest): Promise<AuthorizeResult> {
      const { amountMinor, currency, paymentMethod } = request;
      const answer = await call("authorize", request.idempotencyKey, { amountMinor, currency, paymentMethod }, () => {
        const reason = declineReason(request, current.declineOverMinor);
        if (reason) {
          counts.declines++;
          return { outcome: "declined", reason };
        }
        const providerRef = `auth_${randomUUID()}`;
        authorizations.set(providerRef, { amountMinor: request.amountMinor, status: "authorized", capturedMinor: 0n, refundedMinor: 0n });
        counts.authorizations++;
        return { outcome: "approved", providerRef };
      });
      return answer!;
    },

    async capture(request: AuthorizationRequest): Promise<void> {
      await call("capture", request.idempotencyKey, { providerRef: request.providerRef, amountMinor: request.amountMinor }, () => {
        const auth = authorizationOf(request.providerRef);
        if (auth.status !== "authorized") throw new ProviderRejectedError(`authorization ${request.providerRef} is ${auth.status}`);
        const amount = request.amountMinor ?? auth.amountMinor;
        if (amount <= 0n || amount > auth.amountMinor) throw new ProviderRejectedError(`cannot capture ${amount} of an authorization for ${auth.amountMinor}`);
        auth.status = "captured";
        auth.capturedMinor = amount;
        counts.captures++;
        return undefined;
      });
    },

    async void(request: AuthorizationRequest): Promise<void> {
      await call("void", request.idempotencyKey, { providerRef: request.providerRef, amountMinor: request.amountMinor }, () => {
        const auth = authorizationOf(request.providerRef);
        if (auth.status !== "authorized") throw new ProviderRejectedError(`authorization ${request.providerRef} is ${auth.status}`);
        auth.status = "voided";
        counts.voids++;
        return undefined;
      });
    },

    async refund(request: AuthorizationRequest): Promise<void> {
      await call("refund", request.idempotencyKey, { providerRef: request.providerRef, amountMinor: request.amountMinor }, () => {
        const auth = authorizationOf(request.providerRef);
        if (auth.status !== "captured") throw new ProviderRejectedError(`authorization ${request.providerRef} is ${auth.status}, not captured`);
        const left = auth.capturedMinor - auth.refundedMinor;
        const amount = request.amountMinor ?? left;
        if (amount <= 0n || amount > left) throw new ProviderRejectedError(`cannot refund ${amount}: ${left} left to refund`);
        auth.refundedMinor += amount;
        counts.refunds++;
        return undefined;
      });
    },
  };
}

function declineReason(request: AuthorizeRequest, declineOverMinor: number): string | undefined {
  if (!Object.hasOwn(TEST_PAYMENT_METHODS, request.paymentMethod)) return "unknown payment method";
  const methodReason = TEST_PAYMENT_METHODS[request.paymentMethod];
  if (methodReason) return methodReason;
  if (request.amountMinor <= 0n) return "invalid amount";
  if (request.amountMinor > BigInt(declineOverMinor)) return "amount over limit";
  return undefined;
}

function fingerprintOf(operation: ProviderOperation, request: Record<string, unknown>): string {
  const json = JSON.stringify([operation, request], (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  return createHash("sha256").update(json).digest("base64url");
}

function checked(config: SimulatedProviderConfig): SimulatedProviderConfig {
  if (!(config.latencyMs >= 0)) throw new RangeError(`latencyMs must be >= 0, got ${config.latencyMs}`);
  if (!(config.failureRate >= 0 && config.failureRate <= 1)) throw new RangeError(`failureRate must be within 0..1, got ${config.failureRate}`);
  if (!(config.declineOverMinor >= 0)) throw new RangeError(`declineOverMinor must be >= 0, got ${config.declineOverMinor}`);
  return Object.freeze({ ...config });
}

/** The simulated provider's configuration from PAYMENT_PROVIDER_* variables; an unparsable value fails at startup, naming it. */
export function simulatedProviderConfigFromEnv(env: NodeJS.ProcessEnv): SimulatedProviderConfig {
  const read = (name: string, fallback: number, valid: (n: number) => boolean, rule: string): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || !valid(value)) throw new Error(`${name} must be ${rule}, got "${raw}"`);
    return value;
  };
  return {
    latencyMs: read("PAYMENT_PROVIDER_LATENCY_MS", DEFAULT_SIMULATED_PROVIDER_CONFIG.latencyMs, (n) => n >= 0, "a number of milliseconds >= 0"),
    failureRate: read("PAYMENT_PROVIDER_FAILURE_RATE", DEFAULT_SIMULATED_PROVIDER_CONFIG.failureRate, (n) => n >= 0 && n <= 1, "a number within 0..1"),
    declineOverMinor: read("PAYMENT_PROVIDER_DECLINE_OVER_MINOR", DEFAULT_SIMULATED_PROVIDER_CONFIG.declineOverMinor, (n) => n >= 0 && Number.isInteger(n), "a whole number of minor units >= 0"),
    down: false,
  };
}
