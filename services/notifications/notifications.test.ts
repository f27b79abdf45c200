import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { openDatabase } from "@shop/platform";
import type { Emit, EventContext } from "@shop/platform";
import { NotificationRecordedSchema } from "../../gen/shop/notifications/v1/events_pb.js";
import { Channel, NotificationService } from "../../gen/shop/notifications/v1/notifications_pb.js";
import type { Notification } from "../../gen/shop/notifications/v1/notifications_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema } from "../../gen/shop/orders/v1/events_pb.js";
import { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";
import { createEventProbe } from "../../test/support/event-probe.ts";
import type { EventProbe } from "../../test/support/event-probe.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { recordEmail } from "./event-handlers.ts";
import { formatMoney } from "./messages.ts";
import { migrations } from "./migrations.ts";
import { notifications } from "./index.ts";
import { createNotificationStore } from "./store.ts";
import { errorOf } from "../../test/support/errors.ts";

describe("notifications service", () => {
  let t: TestShop;
  let probe: EventProbe;
  before(async () => {
    probe = createEventProbe([NotificationRecordedSchema]);
    t = await startTestShop([notifications, probe.module]);
  });
  after(() => t.stop());

  const client = () => t.client(NotificationService);
  const tokenFor = async (userId: string) => t.as((await t.tokens.issueUserToken(userId)).token);
  const recordedFor = (userId: string) => probe.all(NotificationRecordedSchema).filter((e) => e.userId === userId);
  /** Waits until `count` notifications were recorded for the user (bounded by the probe's 5 s). */
  const awaitRecorded = (userId: string, count: number) => probe.waitFor(NotificationRecordedSchema, () => recordedFor(userId).length >= count);

  it("sends a new user a welcome email", async () => {
    const userId = randomUUID();
    const eventId = await probe.emit(UserRegisteredSchema, { userId, email: "ada@example.com", displayName: "Ada" });
    const recorded = await awaitRecorded(userId, 1);
    expect(recorded.channel).to.equal(Channel.EMAIL);
    const { notifications: list } = await client().listNotifications({}, await tokenFor(userId));
    expect(list).to.have.length(1);
    const [welcome] = list;
    expect(welcome.notificationId).to.equal(recorded.notificationId);
    expect(welcome.userId).to.equal(userId);
    expect(welcome.channel).to.equal(Channel.EMAIL);
    expect(welcome.subject).to.equal("Welcome to the shop, Ada");
    expect(welcome.body).to.contain("ada@example.com");
    expect(welcome.sourceEventId).to.equal(eventId);
    expect(welcome.createdAt).to.not.equal(undefined);
  });

  it("tells the buyer their order is confirmed, with the short id and the total", async () => {
    const userId = randomUUID();
    const orderId = randomUUID();
    await probe.emit(OrderConfirmedSchema, { orderId, userId, total: { currencyCode: "EUR", unitsMinor: 4590n }, paymentId: randomUUID(), reservationId: orderId });
    await awaitRecorded(userId, 1);
    const { notifications: list } = await client().listNotifications({}, await tokenFor(userId));
    expect(list).to.have.length(1);
    expect(list[0].subject).to.equal(`Your order ${orderId.slice(0, 8)} is confirmed`);
    expect(list[0].body).to.contain("45.90 EUR");
    expect(list[0].body).to.contain(orderId);
  });

  it("tells the buyer their order was cancelled, with the reason in the body", async () => {
    const userId = randomUUID();
    const orderId = randomUUID();
    await probe.emit(OrderCancelledSchema, { orderId, userId, reason: "out of stock: latte-mug" });
    await awaitRecorded(userId, 1);
    const { notifications: list } = await client().listNotifications({}, await tokenFor(userId));
    expect(list).to.have.length(1);
    expect(list[0].subject).to.equal(`Your order ${orderId.slice(0, 8)} was cancelled`);
    expect(list[0].body).to.contain("out of stock: latte-mug");
  });

  it("records one notification per distinct event, and each user sees only their own", async () => {
    const alice = randomUUID();
    const bob = randomUUID();
    const aliceOrder = randomUUID();
    const emitted = [
      await probe.emit(UserRegisteredSchema, { userId: alice, email: "alice@example.com", displayName: "Alice" }),
      await probe.emit(UserRegisteredSchema, { userId: bob, email: "bob@example.com", displayName: "Bob" }),
      await probe.emit(OrderConfirmedSchema, { orderId: aliceOrder, userId: alice, total: { currencyCode: "EUR", unitsMinor: 1600n } }),
      await probe.emit(OrderCancelledSchema, { orderId: randomUUID(), userId: alice, reason: "payment declined: insufficient funds" }),
      await probe.emit(OrderCancelledSchema, { orderId: randomUUID(), userId: bob, reason: "cancelled by the customer" }),
    ];
    await Promise.all([awaitRecorded(alice, 3), awaitRecorded(bob, 2)]);

    const aliceList = (await client().listNotifications({}, await tokenFor(alice))).notifications;
    const bobList = (await client().listNotifications({}, await tokenFor(bob))).notifications;
    expect(aliceList).to.have.length(3);
    expect(bobList).to.have.length(2);
    expect(aliceList.every((n) => n.userId === alice)).to.equal(true);
    expect(bobList.every((n) => n.userId === bob)).to.equal(true);
    // Every emitted event caused exactly one notification, and no event two.
    const sources = [...aliceList, ...bobList].map((n) => n.sourceEventId);
    expect(sources.slice().sort()).to.deep.equal(emitted.slice().sort());
    expect(recordedFor(alice)).to.have.length(3);
    expect(recordedFor(bob)).to.have.length(2);
    expect(bobList.map((n) => n.subject)).to.include("Welcome to the shop, Bob");
    expect(aliceList.map((n) => n.body).join("\n")).not.to.contain("Bob");
  });

  it("pages through a user's notifications newest first, each exactly once", async () => {
    const userId = randomUUID();
    const emitted: string[] = [];
    for (let i = 0; i < 7; i++) {
      emitted.push(await probe.emit(OrderCancelledSchema, { orderId: randomUUID(), userId, reason: `reason ${i}` }));
    }
    await awaitRecorded(userId, 7);
    const token = await tokenFor(userId);
    const seen: Notification[] = [];
    const pageSizes: number[] = [];
    let pageToken = "";
    do {
      const page = await client().listNotifications({ pageSize: 3, pageToken }, token);
      seen.push(...page.notifications);
      pageSizes.push(page.notifications.length);
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && pageSizes.length < 10);
    expect(pageSizes).to.deep.equal([3, 3, 1]);
    expect(seen.map((n) => n.sourceEventId).sort()).to.deep.equal(emitted.slice().sort());
    const key = (n: Notification) => `${timestampDate(n.createdAt!).toISOString()}|${n.notificationId}`;
    const keys = seen.map(key);
    expect(keys).to.deep.equal(keys.slice().sort().reverse());
  });

  it("answers UNAUTHENTICATED without a token and INVALID_ARGUMENT for a made-up page token", async () => {
    expect((await errorOf(client().listNotifications({}))).code).to.equal(Code.Unauthenticated);
    const err = await errorOf(client().listNotifications({ pageToken: "made-up" }, await tokenFor(randomUUID())));
    expect(err.code).to.equal(Code.InvalidArgument);
  });

  it("answers PERMISSION_DENIED to a service: notifications belong to a signed-in user", async () => {
    const serviceToken = await t.tokens.issueServiceToken("storefront");
    expect((await errorOf(client().listNotifications({}, t.as(serviceToken)))).code).to.equal(Code.PermissionDenied);
  });
});

describe("recording a notification", () => {
  it("records nothing and emits nothing the second time the same event is handled", async () => {
    const db = await openDatabase({ path: ":memory:", migrations });
    const store = createNotificationStore(db);
    const emitted: unknown[] = [];
    const emit: Emit = async (_schema, event) => {
      emitted.push(event);
      return randomUUID();
    };
    // The same event id twice: what a redelivery that slipped past the inbox would look like.
    const delivery = (): EventContext => ({
      id: "event-1",
      type: UserRegisteredSchema.typeName,
      source: "users",
      occurredAt: new Date(),
      commit: (fn) => db.transaction((tx) => fn(tx, emit)),
    });
    const message = { subject: "Welcome", body: "Hi" };
    expect(await recordEmail(store, delivery(), "user-1", message)).to.equal(true);
    expect(await recordEmail(store, delivery(), "user-1", message)).to.equal(false);
    expect(await store.listForUser("user-1", undefined, 10)).to.have.length(1);
    expect(emitted).to.have.length(1);
    await db.close();
  });
});

describe("money in notifications", () => {
  it("formats integer minor units with the currency's own decimals", () => {
    expect(formatMoney({ $typeName: "shop.common.v1.Money", currencyCode: "EUR", unitsMinor: 4590n })).to.equal("45.90 EUR");
    expect(formatMoney({ $typeName: "shop.common.v1.Money", currencyCode: "EUR", unitsMinor: 5n })).to.equal("0.05 EUR");
    expect(formatMoney({ $typeName: "shop.common.v1.Money", currencyCode: "JPY", unitsMinor: 1200n })).to.equal("1200 JPY");
  });
});
