// Every call to the payment provider runs under a timeout inside a circuit
// breaker (cockatiel), and comes back as an outcome instead of an exception:
// approved or declined (the provider's business answer), unavailable (timed
// out, failed, or the breaker is open: nothing is known to have happened), or
// rejected (the provider refused the request itself).
//
// Configuration from the environment (guardConfigFromEnv):
//   PAYMENT_PROVIDER_TIMEOUT_MS   per call, default 2000; the caller stops waiting at once
//   PAYMENT_BREAKER_THRESHOLD     consecutive failures that open the circuit, default 5
//   PAYMENT_BREAKER_HALF_OPEN_MS  how long the circuit stays open before one trial call, default 10000
import { BrokenCircuitError, circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, TaskCancelledError, timeout, TimeoutStrategy, wrap } from "cockatiel";
import type { Logger } from "@shop/platform";
import { ProviderRejectedError } from "./provider/index.ts";
import type { AuthorizationRequest, AuthorizeRequest, AuthorizeResult, PaymentProvider } from "./provider/index.ts";

export type Unavailable = { outcome: "unavailable"; reason: string };
export type Rejected = { outcome: "rejected"; reason: string };
export type AuthorizeOutcome = AuthorizeResult | Unavailable | Rejected;
export type OperationOutcome = { outcome: "done" } | Unavailable | Rejected;

export interface GuardConfig {
  /** Milliseconds each provider call may take. Default 2000. */
  timeoutMs: number;
  /** Consecutive failures (unavailable answers, timeouts) that open the circuit. Default 5. */
  breakerThreshold: number;
  /** Milliseconds the circuit stays open before a single trial call decides whether it closes. Default 10000. */
  halfOpenAfterMs: number;
}

export const DEFAULT_GUARD_CONFIG: Readonly<GuardConfig> = { timeoutMs: 2000, breakerThreshold: 5, halfOpenAfterMs: 10_000 };

export type CircuitStateName = "closed" | "open" | "half-open" | "isolated";

export interface GuardedProvider {
  authorize(request: AuthorizeRequest): Promise<AuthorizeOutcome>;
  capture(request: AuthorizationRequest): Promise<OperationOutcome>;
  void(request: AuthorizationRequest): Promise<OperationOutcome>;
  refund(request: AuthorizationRequest): Promise<OperationOutcome>;
  circuitState(): CircuitStateName;
}

const UNAVAILABLE = "payment provider unavailable";

export function createProviderGuard(provider: PaymentProvider, config: GuardConfig, logger: Logger): GuardedProvider {
  // A rejection is the provider answering; only silence and failures say
  // anything about its health.
  const breaker = circuitBreaker(
    handleWhen((err) => !(err instanceof ProviderRejectedError)),
    { halfOpenAfter: config.halfOpenAfterMs, breaker: new ConsecutiveBreaker(config.breakerThreshold) },
  );
  // The breaker sits outside the timeout so that timeouts count as failures.
  const policy = wrap(breaker, timeout(config.timeoutMs, TimeoutStrategy.Aggressive));

  breaker.onBreak(() => logger.warn({ threshold: config.breakerThreshold, half_open_after_ms: config.halfOpenAfterMs }, "payment provider circuit opened"));
  breaker.onHalfOpen(() => logger.info("payment provider circuit half-open: trying one call"));
  breaker.onReset(() => logger.info("payment provider circuit closed"));

  async function guarded<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T | Unavailable | Rejected> {
    try {
      return await policy.execute(({ signal }) => fn(signal));
    } catch (err) {
      if (err instanceof BrokenCircuitError) return { outcome: "unavailable", reason: `${UNAVAILABLE}: circuit open` };
      if (err instanceof TaskCancelledError) return { outcome: "unavailable", reason: `${UNAVAILABLE}: timed out after ${config.timeoutMs} ms` };
      if (err instanceof ProviderRejectedError) return { outcome: "rejected", reason: `payment provider rejected the request: ${err.message}` };
      return { outcome: "unavailable", reason: `${UNAVAILABLE}: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  const operation = (run: (signal: AbortSignal) => Promise<void>) =>
    guarded(async (signal) => {
      await run(signal);
      return { outcome: "done" as const };
    });

  return {
    authorize: (request) => guarded((signal) => provider.authorize(request, signal)),
    capture: (request) => operation((signal) => provider.capture(request, signal)),
    void: (request) => operation((signal) => provider.void(request, signal)),
    refund: (request) => operation((signal) => provider.refund(request, signal)),
    circuitState() {
      switch (breaker.state) {
        case CircuitState.Open:
          return "open";
        case CircuitState.HalfOpen:
          return "half-open";
        case CircuitState.Isolated:
          return "isolated";
        default:
          return "closed";
      }
    },
  };
}

/** The guard's configuration from PAYMENT_PROVIDER_TIMEOUT_MS and PAYMENT_BREAKER_*; an unparsable value fails at startup, naming it. */
export function guardConfigFromEnv(env: NodeJS.ProcessEnv): GuardConfig {
  const positive = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a whole number > 0, got "${raw}"`);
    return value;
  };
  return {
    timeoutMs: positive("PAYMENT_PROVIDER_TIMEOUT_MS", DEFAULT_GUARD_CONFIG.timeoutMs),
    breakerThreshold: positive("PAYMENT_BREAKER_THRESHOLD", DEFAULT_GUARD_CONFIG.breakerThreshold),
    halfOpenAfterMs: positive("PAYMENT_BREAKER_HALF_OPEN_MS", DEFAULT_GUARD_CONFIG.halfOpenAfterMs),
  };
}
