// Gives back the stock of reservations nobody committed or released in time.
// A timer looks for HELD reservations past expires_at with a plain read (so an
// idle shop opens no write transaction), then expires them in one
// transaction that also emits StockReleased "expired" for each. Sweeps never
// overlap; stop() waits for the one in flight.
import type { Database, Logger, ServiceEvents } from "@shop/platform";
import { StockReleasedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { expire } from "./reservations.ts";
import { findExpiredHolds } from "./store.ts";

export interface ExpirySweepOptions {
  db: Database;
  events: ServiceEvents;
  logger: Logger;
  /** Time between sweeps. */
  intervalMs: number;
  /** Reservations expired per transaction; a full batch is followed by another at once. Default 100. */
  batchSize?: number;
}

export interface ExpirySweep {
  start(): void;
  /** Stops the timer and waits for the sweep in flight. */
  stop(): Promise<void>;
}

export function createExpirySweep(options: ExpirySweepOptions): ExpirySweep {
  const { db, events, logger, intervalMs } = options;
  const batchSize = options.batchSize ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let stopping = false;

  async function sweepBatch(): Promise<{ expired: number; full: boolean }> {
    const now = Date.now();
    const due = await findExpiredHolds(db, now, batchSize);
    if (due.length === 0) return { expired: 0, full: false };
    const expired = await events.transaction(async (tx, emit) => {
      let count = 0;
      for (const reservationId of due) {
        // Conditional on HELD and due: a commit or release that got there
        // first wins, and this one changes nothing.
        const outcome = await expire(tx, reservationId, now);
        if (outcome.kind !== "changed") continue;
        await emit(StockReleasedSchema, { orderId: outcome.reservation.orderId, reservationId, reason: "expired" });
        count++;
      }
      return count;
    });
    return { expired, full: due.length === batchSize };
  }

  async function sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const { expired, full } = await sweepBatch();
      total += expired;
      if (!full || stopping) return total;
    }
  }

  function tick(): void {
    if (inFlight) return;
    inFlight = sweep()
      .then((expired) => {
        if (expired > 0) logger.info({ expired }, "expired reservations released their stock");
      })
      .catch((err: unknown) => logger.error({ err }, "reservation expiry sweep failed; next sweep retries"))
      .finally(() => {
        inFlight = undefined;
      });
  }

  return {
    start() {
      if (timer) return;
      stopping = false;
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
