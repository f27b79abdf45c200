// Idempotency keys for provider calls, derived from the order (services/SAGA.md):
// every replica, retry and RPC asks the provider the same question about an
// order, so an authorization, capture or void happens at most once per order.
export const providerKey = {
  authorize: (orderId: string) => `authorize:${orderId}`,
  capture: (orderId: string) => `capture:${orderId}`,
  void: (orderId: string) => `void:${orderId}`,
  /** Refunds may be partial and several, so each is named by the caller's own idempotency key too. */
  refund: (orderId: string, idempotencyKey: string) => `refund:${orderId}:${idempotencyKey}`,
};
