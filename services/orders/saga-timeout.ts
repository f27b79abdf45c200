// The saga's safety net: an order still PENDING timeoutMs after it was created
// (an event lost, a service down for long) is cancelled, which makes inventory
// release and payments void whatever they hold for it. Safe with several
// replicas sweeping at once: the conditional update lets one of them win.
import type { Logger, ServiceEvents } from "@shop/platform";
import type { OrderTransitions } from "./order-transitions.ts";
import type { OrderStatusChanges } from "./status-changes.ts";
import type { OrderStore } from "./store.ts";

export const SAGA_TIMEOUT_REASON = "timed out waiting for stock and payment";

/** Orders cancelled per sweep at most; the next sweep takes the rest. */
const BATCH = 100;

export interface SagaTimeoutOptions {
  store: OrderStore;
  events: ServiceEvents;
  transitions: OrderTransitions;
  changes: OrderStatusChanges;
  logger: Logger;
  /** How long an order may stay PENDING. */
  timeoutMs: number;
  /** Pause between sweeps. */
  sweepMs: number;
}

export interface SagaTimeout {
  start(): void;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
  /** One sweep now; answers how many orders it cancelled. */
  sweep(): Promise<number>;
}

export function createSagaTimeout(options: SagaTimeoutOptions): SagaTimeout {
  const { store, events, transitions, changes, logger, timeoutMs, sweepMs } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;

  async function sweep(): Promise<number> {
    const cutoff = new Date(Date.now() - timeoutMs).toISOString();
    let cancelled = 0;
    for (const orderId of await store.pendingSince(cutoff, BATCH)) {
      const result = await events.transaction((tx, emit) => transitions.cancel(tx, emit, orderId, SAGA_TIMEOUT_REASON));
      if (result.changed) {
        cancelled++;
        changes.changed(orderId);
      }
    }
    if (cancelled > 0) logger.info({ cancelled, timeout_ms: timeoutMs }, "cancelled orders stuck in the saga");
    return cancelled;
  }

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep()
        .catch((err: unknown) => logger.error({ err }, "saga timeout sweep failed; retrying at the next sweep"))
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, sweepMs);
    timer.unref();
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
    sweep,
  };
}
