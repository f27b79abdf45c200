export { ProviderRejectedError, ProviderUnavailableError } from "./payment-provider.ts";
export type { AuthorizationRequest, AuthorizeRequest, AuthorizeResult, PaymentProvider } from "./payment-provider.ts";
export { createSimulatedProvider, DEFAULT_SIMULATED_PROVIDER_CONFIG, simulatedProviderConfigFromEnv, TEST_PAYMENT_METHODS } from "./simulated-provider.ts";
export type {
  ProviderCall,
  ProviderCounts,
  ProviderOperation,
  SimulatedProvider,
  SimulatedProviderConfig,
  SimulatedProviderOptions,
} from "./simulated-provider.ts";
