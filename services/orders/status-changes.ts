// Tells WatchOrder streams in this process that an order's status changed,
// right after the change committed. A change made by another replica is not
// announced here; watchers also re-read the order on a timer for that.
export interface OrderStatusChanges {
  /** Announces a committed status change of the order. */
  changed(orderId: string): void;
  /** Calls listener at each announced change of the order; returns the unsubscribe. */
  subscribe(orderId: string, listener: () => void): () => void;
}

export function createOrderStatusChanges(): OrderStatusChanges {
  const listeners = new Map<string, Set<() => void>>();
  return {
    changed(orderId) {
      for (const listener of listeners.get(orderId) ?? []) listener();
    },
    subscribe(orderId, listener) {
      let set = listeners.get(orderId);
      if (!set) {
        set = new Set();
        listeners.set(orderId, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0 && listeners.get(orderId) === set) listeners.delete(orderId);
      };
    },
  };
}

/**
 * Follows one order's changes: `next()` resolves at the next announced change
 * (or at once if one came since the last call), after pollMs without one, or
 * when the signal aborts, whichever is first. Subscribe before reading the
 * order so a change between the read and the wait is not missed.
 */
export function followOrder(changes: OrderStatusChanges, orderId: string, pollMs: number, signal: AbortSignal) {
  let pending = false;
  let wake: (() => void) | undefined;
  const unsubscribe = changes.subscribe(orderId, () => {
    pending = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  return {
    next(): Promise<void> {
      if (pending || signal.aborted) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollMs);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          pending = false;
          resolve();
        }
        wake = done;
      });
    },
    close(): void {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
      wake?.();
    },
  };
}
