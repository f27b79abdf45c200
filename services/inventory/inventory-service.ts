// The InventoryService handlers. Field rules already ran in the platform, and
// the reservation methods admit only service callers (AUDIENCE_SERVICE).
// ReserveStock emits nothing: StockReserved makes payments authorize, which
// only the saga's OrderCreated may cause. Commit and release announce the
// stock that left or came back, as the saga's handlers do.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Database, ServiceEvents } from "@shop/platform";
import { StockCommittedSchema, StockReleasedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { ReservationStatus } from "../../gen/shop/inventory/v1/inventory_pb.js";
import type { InventoryService } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { commit, release, reserve } from "./reservations.ts";
import type { TransitionOutcome } from "./reservations.ts";
import { findReservation, findStock } from "./store.ts";
import type { ReservationRecord, ReservationState } from "./store.ts";

/** What ttl_seconds = 0 means, fixed by the contract. */
const DEFAULT_TTL_SECONDS = 600;

/** The reason StockReleased carries when ReleaseReservation gave none. */
const RELEASED_ON_REQUEST = "released on request";

export interface InventoryServiceDeps {
  db: Database;
  events: ServiceEvents;
}

const STATUS: Record<ReservationState, ReservationStatus> = {
  HELD: ReservationStatus.HELD,
  COMMITTED: ReservationStatus.COMMITTED,
  RELEASED: ReservationStatus.RELEASED,
  EXPIRED: ReservationStatus.EXPIRED,
};

const toReservation = (r: ReservationRecord) => ({
  reservationId: r.reservationId,
  orderId: r.orderId,
  items: r.items.map((i) => ({ sku: i.sku, quantity: i.quantity })),
  status: STATUS[r.status],
  // A tombstone was never held, so it has no expiry to show.
  expiresAt: r.expiresAt > 0 ? timestampFromMs(r.expiresAt) : undefined,
});

function firstRepeatedSku(items: ReadonlyArray<{ sku: string }>): string | undefined {
  const seen = new Set<string>();
  for (const { sku } of items) {
    if (seen.has(sku)) return sku;
    seen.add(sku);
  }
  return undefined;
}

function settledOrThrow(outcome: TransitionOutcome, reservationId: string, verb: string): ReservationRecord {
  switch (outcome.kind) {
    case "changed":
    case "unchanged":
    case "tombstoned":
      return outcome.reservation;
    case "refused":
      throw new ConnectError(
        `reservation ${reservationId} is ${outcome.reservation.status.toLowerCase()} and cannot be ${verb}`,
        Code.FailedPrecondition,
      );
    case "unknown":
      throw new ConnectError(`reservation ${reservationId} not found`, Code.NotFound);
  }
}

export function createInventoryService({ db, events }: InventoryServiceDeps): ServiceImpl<typeof InventoryService> {
  return {
    async getStock(req) {
      const stock = await findStock(db, req.sku);
      if (!stock) throw new ConnectError(`sku ${req.sku} not found`, Code.NotFound);
      return { stock: { sku: stock.sku, onHand: stock.onHand, reserved: stock.reserved, available: stock.onHand - stock.reserved } };
    },

    async reserveStock(req) {
      const repeated = firstRepeatedSku(req.items);
      if (repeated) throw new ConnectError(`items: sku ${repeated} appears more than once`, Code.InvalidArgument);
      const ttlSeconds = req.ttlSeconds > 0 ? req.ttlSeconds : DEFAULT_TTL_SECONDS;
      const outcome = await db.transaction((tx) =>
        reserve(tx, {
          reservationId: req.reservationId,
          orderId: req.orderId,
          items: req.items.map((i) => ({ sku: i.sku, quantity: i.quantity })),
          expiresAt: Date.now() + ttlSeconds * 1000,
        }),
      );
      switch (outcome.kind) {
        case "reserved":
        case "existing":
          return { reservation: toReservation(outcome.reservation) };
        case "conflict":
          throw new ConnectError(`reservation ${req.reservationId} already exists with a different order or items`, Code.AlreadyExists);
        case "tombstone":
          throw new ConnectError(`reservation ${req.reservationId} was released before it was made; reserve under a new id`, Code.FailedPrecondition);
        case "short": {
          const wanted = req.items.find((i) => i.sku === outcome.sku)!.quantity;
          throw new ConnectError(`not enough stock of ${outcome.sku}: ${wanted} requested, ${outcome.available} available`, Code.ResourceExhausted);
        }
        case "unknown-sku":
          throw new ConnectError(`sku ${outcome.sku} not found`, Code.NotFound);
      }
    },

    async commitReservation(req) {
      const outcome = await events.transaction(async (tx, emit) => {
        const result = await commit(tx, req.reservationId);
        if (result.kind === "changed") {
          await emit(StockCommittedSchema, { orderId: result.reservation.orderId, reservationId: req.reservationId });
        }
        return result;
      });
      return { reservation: toReservation(settledOrThrow(outcome, req.reservationId, "committed")) };
    },

    async releaseReservation(req) {
      const outcome = await events.transaction(async (tx, emit) => {
        const result = await release(tx, req.reservationId);
        if (result.kind === "changed") {
          await emit(StockReleasedSchema, {
            orderId: result.reservation.orderId,
            reservationId: req.reservationId,
            reason: req.reason.trim() || RELEASED_ON_REQUEST,
          });
        }
        return result;
      });
      return { reservation: toReservation(settledOrThrow(outcome, req.reservationId, "released")) };
    },

    async getReservation(req) {
      const reservation = await findReservation(db, req.reservationId);
      if (!reservation) throw new ConnectError(`reservation ${req.reservationId} not found`, Code.NotFound);
      return { reservation: toReservation(reservation) };
    },
  };
}
