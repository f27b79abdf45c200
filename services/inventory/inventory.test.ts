import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { StockCommittedSchema, StockRejectedSchema, StockReleasedSchema, StockReservedSchema } from "../../gen/shop/inventory/v1/events_pb.js";
import { InventoryService, ReservationStatus } from "../../gen/shop/inventory/v1/inventory_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderCreatedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { createEventProbe } from "../../test/support/event-probe.ts";
import type { EventProbe } from "../../test/support/event-probe.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { createInventory } from "./index.ts";
import { seedStock } from "./seed.ts";
import { errorOf } from "../../test/support/errors.ts";

const STOCK_EVENTS = [StockReservedSchema, StockRejectedSchema, StockCommittedSchema, StockReleasedSchema];

interface Harness {
  t: TestShop;
  probe: EventProbe;
  serviceToken: string;
}

async function startHarness(options: Parameters<typeof createInventory>[0]): Promise<Harness> {
  const probe = createEventProbe(STOCK_EVENTS);
  const t = await startTestShop([createInventory(options), probe.module]);
  return { t, probe, serviceToken: await t.tokens.issueServiceToken("orders") };
}

/** Waits until every emitted event was published and handled: the way to prove that something did not happen. */
async function settled({ t, serviceToken }: Harness, timeoutMs = 5000): Promise<void> {
  const admin = t.client(EventAdminService);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const backlog = await admin.getEventBacklog({}, t.as(serviceToken));
    if (backlog.sources.every((s) => s.unpublished === 0) && backlog.consumers.every((c) => c.pending === 0)) return;
    if (Date.now() > deadline) throw new Error(`events still in flight after ${timeoutMs} ms: ${JSON.stringify(backlog)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function inventoryOf(h: Harness) {
  const client = h.t.client(InventoryService);
  const auth = () => h.t.as(h.serviceToken);
  return {
    client,
    stock: async (sku: string) => (await client.getStock({ sku })).stock!,
    reserve: (reservationId: string, items: Array<{ sku: string; quantity: number }>, orderId = randomUUID(), ttlSeconds = 0) =>
      client.reserveStock({ reservationId, orderId, items, ttlSeconds }, auth()),
    commit: (reservationId: string) => client.commitReservation({ reservationId }, auth()),
    release: (reservationId: string, reason = "") => client.releaseReservation({ reservationId, reason }, auth()),
    get: (reservationId: string) => client.getReservation({ reservationId }, auth()),
  };
}

const line = (sku: string, quantity: number) => ({ sku, name: sku, quantity });

describe("inventory service", () => {
  let h: Harness;
  let inv: ReturnType<typeof inventoryOf>;
  before(async () => {
    h = await startHarness({ reservationTtlMs: 120_000 });
    inv = inventoryOf(h);
  });
  after(() => h.t.stop());

  describe("stock and reservations over RPC", () => {
    it("is seeded with stock for every catalog SKU, barista-apron scarce and knock-box sold out, readable without a token", async () => {
      expect(seedStock).to.have.length(24);
      for (const { sku, onHand } of seedStock) {
        expect(await inv.stock(sku)).to.deep.include({ sku, onHand, reserved: 0, available: onHand });
      }
      expect((await inv.stock("barista-apron")).available).to.equal(3);
      expect((await inv.stock("knock-box")).available).to.equal(0);
      expect(seedStock.filter((s) => s.onHand >= 20 && s.onHand <= 200)).to.have.length(22);
      const unknown = await errorOf(inv.client.getStock({ sku: "no-such-sku" }));
      expect(unknown.code).to.equal(Code.NotFound);
      expect(unknown.rawMessage).to.contain("no-such-sku");
    });

    it("reserves, commits and releases: reserved holds stock, commit lowers on_hand, release restores available", async () => {
      const sold = randomUUID();
      const held = await inv.reserve(sold, [line("gooseneck-kettle", 2), line("french-press-1l", 1)]);
      expect(held.reservation).to.deep.include({ reservationId: sold, status: ReservationStatus.HELD });
      expect(held.reservation?.items.map((i) => [i.sku, i.quantity])).to.deep.equal([["french-press-1l", 1], ["gooseneck-kettle", 2]]);
      // ttl_seconds 0 means the contract's ten minutes.
      expect(timestampMs(held.reservation!.expiresAt!) - Date.now()).to.be.within(590_000, 600_000);
      expect(await inv.stock("gooseneck-kettle")).to.deep.include({ onHand: 40, reserved: 2, available: 38 });

      const committed = await inv.commit(sold);
      expect(committed.reservation?.status).to.equal(ReservationStatus.COMMITTED);
      expect(await inv.stock("gooseneck-kettle")).to.deep.include({ onHand: 38, reserved: 0, available: 38 });
      expect(await inv.stock("french-press-1l")).to.deep.include({ onHand: 54, reserved: 0 });
      await h.probe.waitFor(StockCommittedSchema, (e) => e.reservationId === sold);

      const returned = randomUUID();
      await inv.reserve(returned, [line("gooseneck-kettle", 5)], randomUUID(), 60);
      expect((await inv.stock("gooseneck-kettle")).available).to.equal(33);
      const released = await inv.release(returned, "customer changed their mind");
      expect(released.reservation?.status).to.equal(ReservationStatus.RELEASED);
      expect(await inv.stock("gooseneck-kettle")).to.deep.include({ onHand: 38, reserved: 0, available: 38 });
      const announced = await h.probe.waitFor(StockReleasedSchema, (e) => e.reservationId === returned);
      expect(announced.reason).to.equal("customer changed their mind");
      expect((await inv.get(returned)).reservation?.status).to.equal(ReservationStatus.RELEASED);
    });

    it("admits only services to the reservation methods: PERMISSION_DENIED for a user token, UNAUTHENTICATED for none", async () => {
      const user = h.t.as((await h.t.tokens.issueUserToken(randomUUID())).token);
      const id = randomUUID();
      const request = { reservationId: id, orderId: randomUUID(), items: [line("descaler", 1)] };
      expect((await errorOf(inv.client.reserveStock(request, user))).code).to.equal(Code.PermissionDenied);
      expect((await errorOf(inv.client.commitReservation({ reservationId: id }, user))).code).to.equal(Code.PermissionDenied);
      expect((await errorOf(inv.client.releaseReservation({ reservationId: id }, user))).code).to.equal(Code.PermissionDenied);
      expect((await errorOf(inv.client.getReservation({ reservationId: id }, user))).code).to.equal(Code.PermissionDenied);
      expect((await errorOf(inv.client.reserveStock(request))).code).to.equal(Code.Unauthenticated);
      expect((await inv.stock("descaler")).reserved).to.equal(0);
    });

    it("is idempotent by reservation id: a repeated reserve, commit or release changes stock once and returns the reservation", async () => {
      const id = randomUUID();
      const order = randomUUID();
      const first = await inv.reserve(id, [line("moka-pot-6-cup", 2)], order);
      const again = await inv.reserve(id, [line("moka-pot-6-cup", 2)], order);
      expect(again.reservation).to.deep.equal(first.reservation);
      expect((await inv.stock("moka-pot-6-cup")).reserved).to.equal(2);
      expect((await errorOf(inv.reserve(id, [line("moka-pot-6-cup", 3)], order))).code).to.equal(Code.AlreadyExists);
      expect((await errorOf(inv.reserve(id, [line("moka-pot-6-cup", 2)], randomUUID()))).code).to.equal(Code.AlreadyExists);

      expect((await inv.commit(id)).reservation?.status).to.equal(ReservationStatus.COMMITTED);
      expect((await inv.commit(id)).reservation?.status).to.equal(ReservationStatus.COMMITTED);
      expect(await inv.stock("moka-pot-6-cup")).to.deep.include({ onHand: 43, reserved: 0 });
      expect((await errorOf(inv.release(id))).code).to.equal(Code.FailedPrecondition);

      const other = randomUUID();
      await inv.reserve(other, [line("moka-pot-6-cup", 1)]);
      expect((await inv.release(other)).reservation?.status).to.equal(ReservationStatus.RELEASED);
      expect((await inv.release(other)).reservation?.status).to.equal(ReservationStatus.RELEASED);
      expect(await inv.stock("moka-pot-6-cup")).to.deep.include({ onHand: 43, reserved: 0, available: 43 });
      expect((await errorOf(inv.commit(other))).code).to.equal(Code.FailedPrecondition);

      await settled(h);
      expect(h.probe.all(StockCommittedSchema).filter((e) => e.reservationId === id)).to.have.length(1);
      expect(h.probe.all(StockReleasedSchema).filter((e) => e.reservationId === other)).to.have.length(1);
      expect(h.probe.all(StockReleasedSchema).find((e) => e.reservationId === other)?.reason).to.equal("released on request");
    });

    it("answers NOT_FOUND for an unknown reservation id and leaves no trace of it", async () => {
      const ghost = randomUUID();
      expect((await errorOf(inv.commit(ghost))).code).to.equal(Code.NotFound);
      expect((await errorOf(inv.release(ghost))).code).to.equal(Code.NotFound);
      expect((await errorOf(inv.get(ghost))).code).to.equal(Code.NotFound);
    });

    it("holds all items or none: a short SKU answers RESOURCE_EXHAUSTED naming it, and the others stay untouched", async () => {
      const id = randomUUID();
      const short = await errorOf(inv.reserve(id, [line("descaler", 1), line("knock-box", 1)]));
      expect(short.code).to.equal(Code.ResourceExhausted);
      expect(short.rawMessage).to.contain("knock-box");
      expect(await inv.stock("descaler")).to.deep.include({ onHand: 110, reserved: 0 });
      expect((await errorOf(inv.get(id))).code).to.equal(Code.NotFound);
      // Nothing was left behind under the id: it can reserve what is there.
      expect((await inv.reserve(id, [line("descaler", 1)])).reservation?.status).to.equal(ReservationStatus.HELD);
      await inv.release(id);

      const unknown = await errorOf(inv.reserve(randomUUID(), [line("descaler", 1), line("no-such-sku", 1)]));
      expect(unknown.code).to.equal(Code.NotFound);
      expect(unknown.rawMessage).to.contain("no-such-sku");
      const repeated = await errorOf(inv.reserve(randomUUID(), [line("descaler", 1), line("descaler", 2)]));
      expect(repeated.code).to.equal(Code.InvalidArgument);
      expect((await inv.stock("descaler")).reserved).to.equal(0);
    });

    it("never oversells: of 50 concurrent one-unit reservations over 5 connections for 3 aprons, exactly 3 succeed", async () => {
      const { available, onHand } = await inv.stock("barista-apron");
      expect(available).to.equal(3);
      const clients = Array.from({ length: 5 }, () => createClient(InventoryService, createGrpcTransport({ baseUrl: h.t.url })));
      const auth = h.t.as(h.serviceToken);
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          clients[i % clients.length].reserveStock({ reservationId: randomUUID(), orderId: randomUUID(), items: [line("barista-apron", 1)] }, auth),
        ),
      );
      const codes = results.map((r) => (r.status === "fulfilled" ? "ok" : Code[ConnectError.from(r.reason).code]));
      expect(codes.filter((c) => c === "ok")).to.have.length(available);
      expect(codes.filter((c) => c === Code[Code.ResourceExhausted])).to.have.length(50 - available);
      expect(await inv.stock("barista-apron")).to.deep.include({ onHand, reserved: onHand, available: 0 });
    });
  });

  describe("the order saga", () => {
    const orderCreated = (orderId: string, items: ReturnType<typeof line>[]) =>
      h.probe.emit(OrderCreatedSchema, { orderId, userId: randomUUID(), items, paymentMethod: "pm_card_ok" });

    async function reservedOrder(items: ReturnType<typeof line>[]): Promise<string> {
      const orderId = randomUUID();
      await orderCreated(orderId, items);
      await h.probe.waitFor(StockReservedSchema, (e) => e.orderId === orderId);
      return orderId;
    }

    it("answers OrderCreated with StockReserved, holding the items under reservation id = order id", async () => {
      const orderId = randomUUID();
      await orderCreated(orderId, [line("burr-grinder", 1), line("latte-mug", 2), line("burr-grinder", 1)]);
      const reserved = await h.probe.waitFor(StockReservedSchema, (e) => e.orderId === orderId);
      expect(reserved.reservationId).to.equal(orderId);
      expect(reserved.items.map((i) => [i.sku, i.quantity])).to.deep.equal([["burr-grinder", 2], ["latte-mug", 2]]);
      const { reservation } = await inv.get(orderId);
      expect(reservation).to.deep.include({ orderId, status: ReservationStatus.HELD });
      expect(timestampMs(reservation!.expiresAt!) - Date.now()).to.be.within(110_000, 120_000);
      expect(await inv.stock("burr-grinder")).to.deep.include({ reserved: 2, available: 23 });
    });

    it("answers OrderCreated over stock with StockRejected naming the SKU, holding nothing", async () => {
      const orderId = randomUUID();
      await orderCreated(orderId, [line("travel-tumbler", 1), line("knock-box", 1)]);
      const rejected = await h.probe.waitFor(StockRejectedSchema, (e) => e.orderId === orderId);
      expect(rejected).to.deep.include({ reason: "out of stock: knock-box", sku: "knock-box" });
      expect((await inv.stock("travel-tumbler")).reserved).to.equal(0);
      expect((await errorOf(inv.get(orderId))).code).to.equal(Code.NotFound);
    });

    it("commits on OrderConfirmed: StockCommitted, and on_hand goes down by what was held", async () => {
      const before = await inv.stock("hand-grinder");
      const orderId = await reservedOrder([line("hand-grinder", 3)]);
      await h.probe.emit(OrderConfirmedSchema, { orderId, userId: randomUUID(), paymentId: randomUUID(), reservationId: orderId });
      const committed = await h.probe.waitFor(StockCommittedSchema, (e) => e.orderId === orderId);
      expect(committed.reservationId).to.equal(orderId);
      expect(await inv.stock("hand-grinder")).to.deep.include({ onHand: before.onHand - 3, reserved: before.reserved });
      expect((await inv.get(orderId)).reservation?.status).to.equal(ReservationStatus.COMMITTED);
    });

    it("releases on OrderCancelled: StockReleased with the order's reason, and the stock available again", async () => {
      const before = await inv.stock("espresso-cup-set");
      const orderId = await reservedOrder([line("espresso-cup-set", 4)]);
      expect((await inv.stock("espresso-cup-set")).available).to.equal(before.available - 4);
      await h.probe.emit(OrderCancelledSchema, { orderId, userId: randomUUID(), reason: "payment declined: insufficient funds", reservationId: orderId });
      const released = await h.probe.waitFor(StockReleasedSchema, (e) => e.orderId === orderId);
      expect(released).to.deep.include({ reservationId: orderId, reason: "payment declined: insufficient funds" });
      expect(await inv.stock("espresso-cup-set")).to.deep.include({ onHand: before.onHand, available: before.available });
      expect((await inv.get(orderId)).reservation?.status).to.equal(ReservationStatus.RELEASED);
    });

    it("reserves once when the same order is announced twice", async () => {
      const before = await inv.stock("digital-scale");
      const orderId = randomUUID();
      await orderCreated(orderId, [line("digital-scale", 2)]);
      await orderCreated(orderId, [line("digital-scale", 2)]);
      await h.probe.waitFor(StockReservedSchema, (e) => e.orderId === orderId);
      await settled(h);
      expect(h.probe.all(StockReservedSchema).filter((e) => e.orderId === orderId)).to.have.length(1);
      expect((await inv.stock("digital-scale")).reserved).to.equal(before.reserved + 2);
    });

    it("holds nothing for an OrderCreated that arrives after its OrderCancelled", async () => {
      const before = await inv.stock("milk-frother");
      const orderId = randomUUID();
      await h.probe.emit(OrderCancelledSchema, { orderId, userId: randomUUID(), reason: "cancelled by the customer" });
      await settled(h);
      const tombstone = (await inv.get(orderId)).reservation;
      expect(tombstone).to.deep.include({ orderId, status: ReservationStatus.RELEASED });
      expect(tombstone?.items).to.have.length(0);

      await orderCreated(orderId, [line("milk-frother", 1)]);
      await settled(h);
      expect((await inv.get(orderId)).reservation?.status).to.equal(ReservationStatus.RELEASED);
      expect(await inv.stock("milk-frother")).to.deep.include({ reserved: before.reserved });
      const about = h.probe.received.filter((r) => (r.event as { orderId?: string }).orderId === orderId);
      expect(about.map((r) => r.type)).to.deep.equal([]);
    });
  });
});

describe("inventory reservation expiry", () => {
  let h: Harness;
  let inv: ReturnType<typeof inventoryOf>;
  before(async () => {
    h = await startHarness({ reservationTtlMs: 1000, expirySweepMs: 50 });
    inv = inventoryOf(h);
  });
  after(() => h.t.stop());

  it("expires a hold nobody commits: StockReleased 'expired', stock back, and the id stays final", async () => {
    const orderId = randomUUID();
    await h.probe.emit(OrderCreatedSchema, { orderId, userId: randomUUID(), items: [line("cold-brew-jar", 2)] });
    await h.probe.waitFor(StockReservedSchema, (e) => e.orderId === orderId);
    expect((await inv.stock("cold-brew-jar")).reserved).to.equal(2);

    const released = await h.probe.waitFor(StockReleasedSchema, (e) => e.orderId === orderId, 5000);
    expect(released).to.deep.include({ reservationId: orderId, reason: "expired" });
    expect((await inv.get(orderId)).reservation?.status).to.equal(ReservationStatus.EXPIRED);
    expect(await inv.stock("cold-brew-jar")).to.deep.include({ onHand: 20, reserved: 0 });

    expect((await errorOf(inv.commit(orderId))).code).to.equal(Code.FailedPrecondition);
    expect((await inv.release(orderId)).reservation?.status).to.equal(ReservationStatus.EXPIRED);
    // A late repeat of the order finds the expired reservation and holds nothing.
    await h.probe.emit(OrderCreatedSchema, { orderId, userId: randomUUID(), items: [line("cold-brew-jar", 2)] });
    await settled(h);
    expect((await inv.stock("cold-brew-jar")).reserved).to.equal(0);
    expect(h.probe.all(StockReservedSchema).filter((e) => e.orderId === orderId)).to.have.length(1);
    expect(h.probe.all(StockReleasedSchema).filter((e) => e.orderId === orderId)).to.have.length(1);
  });
});
