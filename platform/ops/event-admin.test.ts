// EventAdminService for the whole mesh: what the aggregator makes of the
// instances' answers (replicas of one service share its database, so they
// report the same dead letters and backlog), and where a retry goes.
import { expect } from "chai";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { EventAdminService } from "../../gen/mesh/v1/events_pb.js";
import { createEventAdminAggregator } from "./event-admin.ts";
import type { EventAdminInstance } from "./event-admin.ts";

type Impl = Partial<ServiceImpl<typeof EventAdminService>>;

function instance(name: string, impl: Impl): EventAdminInstance {
  return { name, service: name.replace(/-\d+$/, ""), client: createClient(EventAdminService, createRouterTransport(({ service }) => service(EventAdminService, impl))) };
}

const down = (name: string): EventAdminInstance => instance(name, {
  listDeadLetters: () => Promise.reject(new ConnectError("connection refused", Code.Unavailable)),
  getEventBacklog: () => Promise.reject(new ConnectError("connection refused", Code.Unavailable)),
  retryDeadLetter: () => Promise.reject(new ConnectError("connection refused", Code.Unavailable)),
});

const deadLetter = (consumer: string, eventId: string, failedAtMs: number) => ({ consumer, eventId, eventType: "t", error: "boom", attempts: 5, failedAt: timestampFromMs(failedAtMs) });

function mesh(instances: EventAdminInstance[]) {
  const aggregator = createEventAdminAggregator(instances);
  return createClient(EventAdminService, createRouterTransport(({ service }) => service(EventAdminService, aggregator)));
}

describe("EventAdminService over the whole mesh", function () {
  // orders-0 and orders-1 read the same database; payments-0 its own.
  const ordersLetters = [deadLetter("orders", "e1", 1_000), deadLetter("orders", "e3", 3_000)];
  const ordersBacklog = (pending: number) => ({ sources: [{ source: "orders", unpublished: 2 }], consumers: [{ consumer: "orders", pending, dead: 2 }] });
  const instances = () => [
    instance("orders-0", { listDeadLetters: () => ({ deadLetters: ordersLetters }), getEventBacklog: () => ordersBacklog(1) }),
    instance("orders-1", { listDeadLetters: () => ({ deadLetters: ordersLetters }), getEventBacklog: () => ordersBacklog(3) }),
    instance("payments-0", {
      listDeadLetters: () => ({ deadLetters: [deadLetter("payments", "e2", 2_000)] }),
      getEventBacklog: () => ({ sources: [{ source: "payments", unpublished: 1 }], consumers: [{ consumer: "payments", pending: 4, dead: 1 }] }),
    }),
    down("catalog-0"),
  ];

  it("lists each dead letter once, the most recent failures first, leaving out an instance that fails", async function () {
    const { deadLetters } = await mesh(instances()).listDeadLetters({});
    expect(deadLetters.map((d) => `${d.consumer}/${d.eventId}`)).to.deep.equal(["orders/e3", "payments/e2", "orders/e1"]);
    expect((await mesh(instances()).listDeadLetters({ pageSize: 1 })).deadLetters.map((d) => d.eventId)).to.deep.equal(["e3"]);
    expect((await mesh(instances()).listDeadLetters({ consumer: "payments" })).deadLetters.map((d) => d.eventId)).to.deep.equal(["e2"]);
  });

  it("counts a backlog once per service (the larger of its replicas' counts) and adds up across services", async function () {
    const backlog = await mesh(instances()).getEventBacklog({});
    expect(backlog.sources.map((s) => [s.source, s.unpublished])).to.deep.equal([
      ["orders", 2],
      ["payments", 1],
    ]);
    expect(backlog.consumers.map((c) => [c.consumer, c.pending, c.dead])).to.deep.equal([
      ["orders", 3, 2],
      ["payments", 4, 1],
    ]);
  });

  it("answers UNAVAILABLE, naming why, when no instance answers", async function () {
    const err = await mesh([down("orders-0")]).getEventBacklog({}).then(() => expect.fail("expected UNAVAILABLE"), (e: unknown) => ConnectError.from(e));
    expect(err.code).to.equal(Code.Unavailable);
    expect(err.rawMessage).to.equal("no instance answered (orders-0: [unavailable] connection refused)");
  });

  it("retries a dead letter at the replicas of its consumer's service, past one that is down, and nowhere else", async function () {
    const asked: string[] = [];
    const retrying = (name: string, outcome: () => void) => instance(name, { retryDeadLetter: () => (asked.push(name), outcome(), {}) });
    const notHere = () => {
      throw new ConnectError("no dead letter e1 for orders", Code.NotFound);
    };
    const ok = () => undefined;
    await mesh([retrying("payments-0", ok), down("orders-0"), retrying("orders-1", ok)]).retryDeadLetter({ consumer: "orders", eventId: "e1" });
    expect(asked).to.deep.equal(["orders-1"]);

    const err = await mesh([down("orders-0"), retrying("orders-1", notHere)])
      .retryDeadLetter({ consumer: "orders", eventId: "e1" })
      .then(() => expect.fail("expected NOT_FOUND"), (e: unknown) => ConnectError.from(e));
    expect(err.code).to.equal(Code.NotFound);
    expect(err.rawMessage).to.equal("orders-1: no dead letter e1 for orders");

    const nobody = await mesh([retrying("orders-0", ok)])
      .retryDeadLetter({ consumer: "shipping", eventId: "e1" })
      .then(() => expect.fail("expected NOT_FOUND"), (e: unknown) => ConnectError.from(e));
    expect(nobody.code).to.equal(Code.NotFound);
    expect(nobody.rawMessage).to.match(/^no instance runs the consumer shipping/);
  });
});
