// The boundary between the payments service and an external payment
// provider. Everything the service knows about a provider is here: four
// operations, each carrying an idempotency key, and two kinds of error.
// A real provider's HTTP client would implement this interface unchanged.

export interface AuthorizeRequest {
  /** Same key, same answer: the provider performs the effect at most once per key. */
  idempotencyKey: string;
  amountMinor: bigint;
  /** ISO 4217 code, for example "EUR". */
  currency: string;
  /** A payment method token, for example "pm_card_ok". */
  paymentMethod: string;
}

/** A decline is an answer, not an error: the provider looked at the card and said no. */
export type AuthorizeResult = { outcome: "approved"; providerRef: string } | { outcome: "declined"; reason: string };

export interface AuthorizationRequest {
  idempotencyKey: string;
  /** The provider's reference of the authorization, from an approved authorize. */
  providerRef: string;
  /** Capture and refund only. Unset means the whole authorized (capture) or remaining captured (refund) amount. */
  amountMinor?: bigint;
}

export interface PaymentProvider {
  /**
   * A provider is remote: when `signal` aborts, the caller stops waiting, but
   * the provider may still have performed the effect. Repeating the call with
   * the same idempotency key finds out without doing it twice.
   */
  authorize(request: AuthorizeRequest, signal?: AbortSignal): Promise<AuthorizeResult>;
  capture(request: AuthorizationRequest, signal?: AbortSignal): Promise<void>;
  void(request: AuthorizationRequest, signal?: AbortSignal): Promise<void>;
  refund(request: AuthorizationRequest, signal?: AbortSignal): Promise<void>;
}

/** The provider could not be reached or failed (a 5xx): nothing was done; the same call may succeed later. */
export class ProviderUnavailableError extends Error {
  override name = "ProviderUnavailableError";
}

/**
 * The provider refused the request itself (a 4xx): an unknown authorization,
 * an amount beyond what is left, an idempotency key reused for a different
 * request. Repeating it will not help, and it says nothing about the
 * provider's health.
 */
export class ProviderRejectedError extends Error {
  override name = "ProviderRejectedError";
}
