// Server reflection: grpcurl lists, describes and calls with no .proto files,
// describe shows the contracts' comments (services, methods, fields, enum
// values), and the older v1alpha service answers the clients that only speak it.
import { expect } from "chai";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ServerReflection as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ServerReflectionRequest, ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { PaymentService } from "../gen/shop/payments/v1/payments_pb.js";
import { grpcClient } from "../test/support/connect-clients.ts";
import { testAuthority } from "../test/support/keys.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";
import { createLogger } from "./telemetry/logger.ts";
import { createServer } from "./server.ts";
import type { ShopServer } from "./server.ts";

describe("reflection", function () {
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
  });

  after(async function () {
    await server?.stop();
  });

  it("grpcurl list shows the served services, health and both reflection versions", async function () {
    const res = await grpcurl(["-plaintext", server.address, "list"]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout.trim().split("\n").sort()).to.deep.equal([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "mesh.testing.v1.EchoService",
    ]);
  });

  it("grpcurl describe of a method shows its signature and the contract's mesh policy", async function () {
    const res = await grpcurl(["-plaintext", server.address, "describe", "mesh.testing.v1.EchoService.Echo"]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.include("rpc Echo ( .mesh.testing.v1.EchoRequest ) returns ( .mesh.testing.v1.EchoResponse )");
    expect(res.stdout).to.match(/\(\.mesh\.v1\.policy\) = \{ deadline_ms: 2000, audience: AUDIENCE_PUBLIC \}/);
  });

  it("grpcurl describe of a message shows its fields with their rules and sensitivity", async function () {
    const res = await grpcurl(["-plaintext", server.address, "describe", "mesh.testing.v1.EchoRequest"]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.match(/string message = 1 \[\(\.mesh\.v1\.rules\) = \{ max_len: 10000 \}\];/);
    expect(res.stdout).to.match(/uint32 sleep_ms = 2 \[\(\.mesh\.v1\.rules\) = \{ has_max: true, max: 60000 \}\];/);
    expect(res.stdout).to.match(/string secret = 3 \[\(\.mesh\.v1\.sensitive\) = true\];/);
    expect(res.stdout).to.include("bytes payload = 4;");
  });

  it("grpcurl describe shows the contract's comments on a method and on a field", async function () {
    const method = await grpcurl(["-plaintext", server.address, "describe", "mesh.testing.v1.EchoService.Echo"]);
    expect(method.code, method.stderr).to.equal(0);
    expect(method.stdout).to.include("// Answers with the message and what the server saw of the call.\nrpc Echo (");
    const field = await grpcurl(["-plaintext", server.address, "describe", "mesh.testing.v1.EchoRequest.secret"]);
    expect(field.code, field.stderr).to.equal(0);
    expect(field.stdout).to.include("// A field the contract marks sensitive, to prove it never reaches a log.\nstring secret = 3");
  });

  it("grpcurl calls a method with -d, learning its types from reflection alone", async function () {
    // No -proto or -protoset flag: every type comes from the server.
    const res = await grpcurl(["-plaintext", "-d", '{"message":"via reflection"}', server.address, "mesh.testing.v1.EchoService/Echo"]);
    expect(res.code, res.stderr).to.equal(0);
    expect(JSON.parse(res.stdout)).to.include({ message: "via reflection" });
  });

  it("v1alpha answers list_services on its bidi stream to a generated Connect client", async function () {
    async function* requests(): AsyncIterable<MessageInitShape<typeof ServerReflectionRequestSchema>> {
      yield { host: "", messageRequest: { case: "listServices", value: "" } };
    }
    const responses: Array<{ original: ServerReflectionRequest | undefined; names: string[] }> = [];
    for await (const res of grpcClient(ReflectionV1Alpha, server.url).serverReflectionInfo(requests())) {
      expect(res.messageResponse.case).to.equal("listServicesResponse");
      const names = res.messageResponse.case === "listServicesResponse" ? res.messageResponse.value.service.map((s) => s.name) : [];
      responses.push({ original: res.originalRequest, names });
    }
    expect(responses).to.have.length(1);
    expect(responses[0].original?.messageRequest.case).to.equal("listServices");
    expect(responses[0].names).to.have.members([
      "mesh.testing.v1.EchoService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });
});

describe("reflection of a shop contract", function () {
  let shop: ShopServer;
  let address: string;

  before(async function () {
    // Reflection needs only the descriptors: the methods are left unserved.
    shop = createServer({ port: 0, host: "127.0.0.1", tokens: testAuthority(), logger: createLogger({ level: "silent" }) });
    shop.register("payments", PaymentService, {});
    const { port } = await shop.listen();
    address = `127.0.0.1:${port}`;
  });

  after(async function () {
    await shop?.drain();
  });

  it("grpcurl describe shop.payments.v1.PaymentService shows the service's and each method's documentation", async function () {
    const res = await grpcurl(["-plaintext", address, "describe", "shop.payments.v1.PaymentService"]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.include("// Authorize, capture, void and refund, for the services of the order saga.\n");
    expect(res.stdout).to.include("// the answer is a payment in status DECLINED with a decline_reason.\n  rpc AuthorizePayment (");
    expect(res.stdout).to.include("// One payment. Unknown ids answer NOT_FOUND.\n  rpc GetPayment (");
  });

  it("grpcurl describe of a method, a field and an enum value shows each one's comment, and the field its closed set", async function () {
    const method = await grpcurl(["-plaintext", address, "describe", "shop.payments.v1.PaymentService.CapturePayment"]);
    expect(method.code, method.stderr).to.equal(0);
    expect(method.stdout).to.include("// Takes the authorized amount. Capturing a captured payment returns it\n// unchanged.");
    const field = await grpcurl(["-plaintext", address, "describe", "shop.payments.v1.AuthorizePaymentRequest.payment_method"]);
    expect(field.code, field.stderr).to.equal(0);
    expect(field.stdout).to.include("// A test payment method token of the simulated provider");
    expect(field.stdout).to.match(/in: \[\s*"pm_card_ok",\s*"pm_card_declined",\s*"pm_card_insufficient_funds"\s*\]/);
    const value = await grpcurl(["-plaintext", address, "describe", "shop.payments.v1.PaymentStatus.PAYMENT_STATUS_DECLINED"]);
    expect(value.code, value.stderr).to.equal(0);
    expect(value.stdout).to.include("// The provider refused the authorization; see decline_reason. Final.\nPAYMENT_STATUS_DECLINED = 5;");
  });

  it("answers NOT_FOUND for a symbol no served file defines", async function () {
    const res = await grpcurl(["-plaintext", address, "describe", "shop.payments.v1.AuthorizePaymentRequest.no_such_field"]);
    expect(res.code).to.not.equal(0);
    expect(res.stderr).to.include("not found");
  });
});
