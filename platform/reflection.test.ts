// Server reflection: grpcurl lists, describes and calls with no .proto files,
// and the older v1alpha service answers the clients that only speak it.
import { expect } from "chai";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ServerReflection as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ServerReflectionRequest, ServerReflectionRequestSchema } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcClient } from "../test/support/connect-clients.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

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
