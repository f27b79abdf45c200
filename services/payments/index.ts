// payments: authorize, capture, void and refund against an external payment
// provider (simulated here), each provider call under a timeout and a
// circuit breaker; the payments steps of the order saga; idempotency keys on
// every write.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { PaymentService } from "../../gen/shop/payments/v1/payments_pb.js";
import { migrations } from "./migrations.ts";
import { createPaymentService } from "./payment-service.ts";
import { createSimulatedProvider, simulatedProviderConfigFromEnv } from "./provider/index.ts";
import type { PaymentProvider } from "./provider/index.ts";
import { createProviderGuard, guardConfigFromEnv } from "./provider-guard.ts";
import { handleSagaEvents } from "./saga-handlers.ts";
import { createPaymentStore } from "./store.ts";

export interface PaymentsModuleOptions {
  /**
   * The provider to call. Default: the simulated provider configured from
   * PAYMENT_PROVIDER_LATENCY_MS, PAYMENT_PROVIDER_FAILURE_RATE and
   * PAYMENT_PROVIDER_DECLINE_OVER_MINOR.
   */
  provider?: PaymentProvider;
  /** Milliseconds each provider call may take. Default PAYMENT_PROVIDER_TIMEOUT_MS, then 2000. */
  providerTimeoutMs?: number;
  breaker?: {
    /** Consecutive failures that open the circuit. Default PAYMENT_BREAKER_THRESHOLD, then 5. */
    threshold?: number;
    /** Milliseconds the circuit stays open before one trial call. Default PAYMENT_BREAKER_HALF_OPEN_MS, then 10000. */
    halfOpenAfterMs?: number;
  };
}

/** The payments service with its provider and resilience settings; what is not given comes from the environment. */
export function createPaymentsModule(options: PaymentsModuleOptions = {}): ServiceModule {
  return {
    name: "payments",
    migrations,
    async start(ctx) {
      const fromEnv = guardConfigFromEnv(ctx.env);
      const provider = createProviderGuard(
        options.provider ?? createSimulatedProvider(simulatedProviderConfigFromEnv(ctx.env)),
        {
          timeoutMs: options.providerTimeoutMs ?? fromEnv.timeoutMs,
          breakerThreshold: options.breaker?.threshold ?? fromEnv.breakerThreshold,
          halfOpenAfterMs: options.breaker?.halfOpenAfterMs ?? fromEnv.halfOpenAfterMs,
        },
        ctx.logger,
      );
      const store = createPaymentStore(ctx.db);
      handleSagaEvents({ events: ctx.events, store, provider, logger: ctx.logger });
      return { services: [serve(PaymentService, createPaymentService({ store, events: ctx.events, provider }))] };
    },
  };
}

export const payments: ServiceModule = createPaymentsModule();

export { createSimulatedProvider, ProviderRejectedError, ProviderUnavailableError, simulatedProviderConfigFromEnv, TEST_PAYMENT_METHODS } from "./provider/index.ts";
export type { PaymentProvider, SimulatedProvider, SimulatedProviderConfig, ProviderCounts, ProviderCall } from "./provider/index.ts";
