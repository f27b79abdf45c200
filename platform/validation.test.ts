// Bad input is refused with the right code before any handler runs, and the
// server keeps serving; field rules come from the contract's (mesh.v1.rules).
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import { SignUpRequestSchema } from "../gen/shop/users/v1/users_pb.js";
import { QuotePriceRequestSchema } from "../gen/shop/catalog/v1/catalog_pb.js";
import { CreateOrderRequestSchema } from "../gen/shop/orders/v1/orders_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import type { GrpcJsCall } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";
import { findViolations } from "./validation.ts";

const FOUR_MIB = 4 * 1024 * 1024;

describe("bad input", function () {
  let server: ServerProcess;
  let grpcJs: GrpcJsCall;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
    grpcJs = createGrpcJsClient(server.address);
  });

  after(async function () {
    grpcJs?.close();
    await server?.stop();
  });

  /** An Echo that must succeed: the server is still serving. */
  async function expectStillServing(): Promise<void> {
    const res = await grpcClient(EchoService, server.url).echo({ message: "still serving" });
    expect(res.message).to.equal("still serving");
  }

  const grpcJsFailure = (call: Promise<unknown>) =>
    call.then(
      () => expect.fail("the call succeeded"),
      (e: grpc.ServiceError) => e,
    );

  it("malformed protobuf bytes answer INVALID_ARGUMENT, then the server still serves", async function () {
    const err = await grpcJsFailure(grpcJs.unaryRaw("/mesh.testing.v1.EchoService/Echo", Buffer.from([0xff, 0xff, 0xff])));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.details).to.include("mesh.testing.v1.EchoRequest");
    await expectStillServing();
  });

  it("the same malformed bytes over Connect (application/proto) answer HTTP 400 invalid_argument, not 500 internal", async function () {
    const res = await fetch(`${server.url}/mesh.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
      body: new Uint8Array([0xff, 0xff, 0xff]),
    });
    expect(res.status).to.equal(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).to.equal("invalid_argument");
    expect(body.message).to.include("mesh.testing.v1.EchoRequest");
    await expectStillServing();
  });

  it("what connect-node refuses before the pipeline counts as a refusal by reason: decoding, content type", async function () {
    const metric = async (reason: string) => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`rpc_server_refused_total{reason="${reason}"}`));
      return line ? Number(line.split(" ").pop()) : 0;
    };
    const decoding = await metric("decoding");
    const contentType = await metric("content_type");
    const url = `${server.url}/mesh.testing.v1.EchoService/Echo`;
    const bad = await fetch(url, { method: "POST", headers: { "content-type": "application/proto" }, body: new Uint8Array([0xff, 0xff, 0xff]) });
    expect(bad.status).to.equal(400);
    const odd = await fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "hello" });
    expect(odd.status).to.equal(415);
    const good = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ message: "fine" }) });
    expect(good.status).to.equal(200);
    const failed = await fetch(`${server.url}/mesh.testing.v1.EchoService/Fail`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code: 5, message: "nope" }) });
    expect(failed.status).to.equal(404);
    expect(await metric("decoding")).to.equal(decoding + 1);
    expect(await metric("content_type")).to.equal(contentType + 1);
    const lines = server.logs.filter((l) => l.msg === "refused" && l.path === "/mesh.testing.v1.EchoService/Fail");
    expect(lines, "a handler's own error is no refusal").to.have.length(0);
  });

  it("a message over 4 MiB answers RESOURCE_EXHAUSTED over gRPC, then the server still serves", async function () {
    const big = createGrpcJsClient(server.address, { "grpc.max_send_message_length": 16 * 1024 * 1024 });
    try {
      const err = await grpcJsFailure(big.unary(EchoService.method.echo, { payload: new Uint8Array(FOUR_MIB + 1024) }));
      expect(err.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      big.close();
    }
    await expectStillServing();
  });

  it("a message just under 4 MiB is accepted", async function () {
    // The limit's other side: what the RESOURCE_EXHAUSTED tests refuse is the size, not the payload field.
    const big = createGrpcJsClient(server.address, { "grpc.max_send_message_length": 16 * 1024 * 1024 });
    try {
      const res = await big.unary(EchoService.method.echo, { message: "big", payload: new Uint8Array(FOUR_MIB - 1024) });
      expect(res.message).to.equal("big");
    } finally {
      big.close();
    }
  });

  describe("a broken field rule answers INVALID_ARGUMENT naming the field", function () {
    it("Echo sleep_ms 70000 (max 60000), through a generated Connect client", async function () {
      const err = await failureOf(grpcClient(EchoService, server.url).echo({ sleepMs: 70_000 }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.include("sleep_ms").and.include("at most 60000");
      await expectStillServing();
    });

    it("Echo sleep_ms 70000, through the grpc-js client", async function () {
      const err = await grpcJsFailure(grpcJs.unary(EchoService.method.echo, { sleepMs: 70_000 }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(err.details).to.include("sleep_ms");
      await expectStillServing();
    });

    it("Echo sleep_ms 70000, through grpcurl", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"sleep_ms":70000}', server.address, "mesh.testing.v1.EchoService/Echo"]);
      expect(res.code).to.equal(64 + 3);
      expect(res.stderr).to.include("Code: InvalidArgument").and.include("sleep_ms");
      await expectStillServing();
    });

    it("Count n 20000 (max 10000), a server stream, fails before any message", async function () {
      const received: number[] = [];
      const err = await failureOf(
        (async () => {
          for await (const m of grpcClient(EchoService, server.url).count({ n: 20_000 })) received.push(m.value);
        })(),
      );
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.match(/\bn: must be at most 10000/);
      expect(received).to.deep.equal([]);
      await expectStillServing();
    });
  });
});

describe("findViolations", function () {
  const fields = (violations: Array<{ field: string; description: string }>) => violations.map((v) => `${v.field}: ${v.description}`);

  it("accepts a valid SignUpRequest", function () {
    const ok = create(SignUpRequestSchema, { email: "ada@example.com", password: "correct horse", displayName: "Ada" });
    expect(findViolations(SignUpRequestSchema, ok)).to.deep.equal([]);
  });

  it("names both a missing email and a missing password as required", function () {
    const violations = fields(findViolations(SignUpRequestSchema, create(SignUpRequestSchema, { displayName: "Ada" })));
    expect(violations).to.deep.equal(["email: is required", "password: is required"]);
  });

  it("names an email that is not an address", function () {
    const violations = fields(findViolations(SignUpRequestSchema, create(SignUpRequestSchema, { email: "not-an-email", password: "long enough", displayName: "Ada" })));
    expect(violations).to.deep.equal(["email: must be a valid email address"]);
  });

  it("names a password shorter than 8 characters", function () {
    const violations = fields(findViolations(SignUpRequestSchema, create(SignUpRequestSchema, { email: "ada@example.com", password: "short", displayName: "Ada" })));
    expect(violations).to.deep.equal(["password: must be at least 8 characters"]);
  });

  it("names a display_name over 80 characters, counting characters not bytes", function () {
    const tooLong = create(SignUpRequestSchema, { email: "ada@example.com", password: "long enough", displayName: "x".repeat(81) });
    expect(fields(findViolations(SignUpRequestSchema, tooLong))).to.deep.equal(["display_name: must be at most 80 characters"]);
    // 80 characters of 4 bytes each is still 80 characters.
    const wide = create(SignUpRequestSchema, { email: "ada@example.com", password: "long enough", displayName: "😀".repeat(80) });
    expect(findViolations(SignUpRequestSchema, wide)).to.deep.equal([]);
  });

  it("answers a value outside a closed set with every value the set allows, and leaves an empty one to required", function () {
    const order = (paymentMethod: string) => create(CreateOrderRequestSchema, { idempotencyKey: "k", items: [{ sku: "latte-mug", quantity: 1 }], paymentMethod });
    expect(findViolations(CreateOrderRequestSchema, order("pm_card_declined"))).to.deep.equal([]);
    expect(fields(findViolations(CreateOrderRequestSchema, order("visa")))).to.deep.equal(['payment_method: must be one of "pm_card_ok", "pm_card_declined", "pm_card_insufficient_funds"']);
    // Case matters: the set is exact.
    expect(fields(findViolations(CreateOrderRequestSchema, order("PM_CARD_OK")))).to.have.length(1);
    expect(fields(findViolations(CreateOrderRequestSchema, order("")))).to.deep.equal(["payment_method: is required"]);
  });

  it("names an empty items list of a QuotePriceRequest", function () {
    expect(fields(findViolations(QuotePriceRequestSchema, create(QuotePriceRequestSchema, { items: [] })))).to.deep.equal(["items: must not be empty"]);
  });

  it("names a nested field with its list index: items[1].quantity", function () {
    const req = create(QuotePriceRequestSchema, {
      items: [
        { sku: "red-mug", quantity: 1 },
        { sku: "blue-mug", quantity: 0 },
      ],
    });
    expect(fields(findViolations(QuotePriceRequestSchema, req))).to.deep.equal(["items[1].quantity: must be at least 1"]);
  });
});
