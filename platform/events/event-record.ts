// An event as it is stored and carried: the domain message in protobuf binary
// plus the platform's envelope fields.
export interface EventRecord {
  readonly id: string;
  /** Fully qualified message type, "shop.orders.v1.OrderCreated". */
  readonly type: string;
  readonly payload: Uint8Array;
  /** W3C trace context of the code that emitted it. */
  readonly headers: Record<string, string>;
  /** ISO-8601. */
  readonly occurredAt: string;
  readonly source: string;
}

/** A bus moves committed events from producers' outboxes to consumers. */
export interface EventBus {
  /** Resolves once every event is durably accepted for every subscriber. */
  publish(events: readonly EventRecord[]): Promise<void>;
  close(): Promise<void>;
}
