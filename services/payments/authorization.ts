// What an authorization attempt becomes, whoever asked for it (the saga or
// an AuthorizePayment call): the payment row, and the one event announcing it.
import { randomUUID } from "node:crypto";
import type { Emit } from "@shop/platform";
import { PaymentAuthorizedSchema, PaymentDeclinedSchema, PaymentVoidedSchema } from "../../gen/shop/payments/v1/events_pb.js";
import type { AuthorizeRequest, AuthorizeResult } from "./provider/index.ts";
import type { Unavailable } from "./provider-guard.ts";
import { providerKey } from "./provider-keys.ts";
import type { PaymentRecord } from "./store.ts";

export interface OrderTerms {
  orderId: string;
  amountMinor: bigint;
  currency: string;
  paymentMethod: string;
}

/** The same request for an order whoever asks, so the provider answers it once. */
export function authorizeRequest(terms: OrderTerms): AuthorizeRequest {
  return { idempotencyKey: providerKey.authorize(terms.orderId), amountMinor: terms.amountMinor, currency: terms.currency, paymentMethod: terms.paymentMethod };
}

/**
 * approved → AUTHORIZED (or VOIDED when it was already voided at the provider),
 * declined → DECLINED with the provider's reason, unavailable → FAILED with
 * the reason it was unavailable.
 */
export function paymentFromAuthorization(terms: OrderTerms, outcome: AuthorizeResult | Unavailable, options: { voided?: boolean } = {}): PaymentRecord {
  const at = new Date().toISOString();
  const base = { paymentId: randomUUID(), ...terms, refundedMinor: 0n, createdAt: at, updatedAt: at };
  switch (outcome.outcome) {
    case "approved":
      return { ...base, status: options.voided ? "VOIDED" : "AUTHORIZED", declineReason: "", providerRef: outcome.providerRef };
    case "declined":
      return { ...base, status: "DECLINED", declineReason: outcome.reason, providerRef: null };
    case "unavailable":
      return { ...base, status: "FAILED", declineReason: outcome.reason, providerRef: null };
  }
}

/** The reason PaymentDeclined carries: the orders service cancels the order with it. */
export function declineEventReason(payment: PaymentRecord): string {
  return payment.status === "DECLINED" ? `payment declined: ${payment.declineReason}` : payment.declineReason;
}

/** Emits the event that announces a newly recorded authorization attempt. */
export async function announceAuthorization(emit: Emit, payment: PaymentRecord): Promise<void> {
  const { orderId, paymentId } = payment;
  switch (payment.status) {
    case "AUTHORIZED":
      await emit(PaymentAuthorizedSchema, { orderId, paymentId, amount: { currencyCode: payment.currency, unitsMinor: payment.amountMinor } });
      return;
    case "VOIDED":
      await emit(PaymentVoidedSchema, { orderId, paymentId });
      return;
    case "DECLINED":
    case "FAILED":
      await emit(PaymentDeclinedSchema, { orderId, reason: declineEventReason(payment) });
      return;
    default:
      throw new Error(`a new payment cannot be ${payment.status}`);
  }
}
