// One port serves gRPC (h2c), Connect (JSON and binary) and gRPC-Web, to every
// kind of client the mesh meets: generated Connect clients, grpc-js, grpcurl,
// curl.
import { execFile } from "node:child_process";
import { expect } from "chai";
import { createClient } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CountRequestSchema, CountResponseSchema, EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import type { CountRequest, CountResponse } from "../gen/mesh/testing/v1/echo_pb.js";
import { collect, everyProtocol, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

describe("server: one port, every client", function () {
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "s1" });
  });

  after(async function () {
    await server?.stop();
  });

  describe("Echo", function () {
    it("answers a generated Connect client over gRPC", async function () {
      const res = await grpcClient(EchoService, server.url).echo({ message: "hello connect" });
      expect(res.message).to.equal("hello connect");
      expect(res.instance).to.equal("s1");
    });

    it("answers the grpc-js client", async function () {
      const client = createGrpcJsClient(server.address);
      try {
        const res = await client.unary(EchoService.method.echo, { message: "hello grpc-js" });
        expect(res.message).to.equal("hello grpc-js");
        expect(res.instance).to.equal("s1");
      } finally {
        client.close();
      }
    });

    it("answers grpcurl through reflection, with no proto files", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"message":"hello grpcurl"}', server.address, "mesh.testing.v1.EchoService/Echo"]);
      expect(res.code, res.stderr).to.equal(0);
      const body = JSON.parse(res.stdout) as { message: string; instance: string };
      expect(body).to.include({ message: "hello grpcurl", instance: "s1" });
    });

    for (const protocol of everyProtocol) {
      it(`answers ${protocol.name} on the same port`, async function () {
        const res = await createClient(EchoService, protocol.transport(server.url)).echo({ message: `over ${protocol.name}` });
        expect(res.message).to.equal(`over ${protocol.name}`);
        expect(res.instance).to.equal("s1");
      });
    }

    it("answers curl posting Connect JSON over HTTP/1.1", async function () {
      const stdout = await new Promise<string>((resolve, reject) =>
        execFile(
          "curl",
          ["-s", "-X", "POST", "-H", "content-type: application/json", "-d", '{"message":"x"}', `${server.url}/mesh.testing.v1.EchoService/Echo`],
          (err, out) => (err ? reject(err) : resolve(out)),
        ),
      );
      const body = JSON.parse(stdout) as { message: string; instance: string };
      expect(body).to.include({ message: "x", instance: "s1" });
    });
  });

  describe("Count, a server stream", function () {
    it("streams every number to a generated Connect client, in order", async function () {
      const values = (await collect(grpcClient(EchoService, server.url).count({ n: 5 }))).map((r) => r.value);
      expect(values).to.deep.equal([1, 2, 3, 4, 5]);
    });

    it("streams every number over Connect and gRPC-Web too", async function () {
      for (const { name, transport } of everyProtocol) {
        const values = (await collect(createClient(EchoService, transport(server.url)).count({ n: 3 }))).map((r) => r.value);
        expect(values, name).to.deep.equal([1, 2, 3]);
      }
    });

    it("streams every number to the grpc-js client", async function () {
      const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
      try {
        const values = await new Promise<number[]>((resolve, reject) => {
          const out: number[] = [];
          const call = client.makeServerStreamRequest(
            "/mesh.testing.v1.EchoService/Count",
            (m: CountRequest) => Buffer.from(toBinary(CountRequestSchema, m)),
            (b: Buffer): CountResponse => fromBinary(CountResponseSchema, b),
            create(CountRequestSchema, { n: 4, intervalMs: 5 }),
          );
          call.on("data", (m: CountResponse) => out.push(m.value));
          call.on("error", reject);
          call.on("status", (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve(out) : reject(new Error(s.details))));
        });
        expect(values).to.deep.equal([1, 2, 3, 4]);
      } finally {
        client.close();
      }
    });

    it("streams every number to grpcurl", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"n":3}', server.address, "mesh.testing.v1.EchoService/Count"]);
      expect(res.code, res.stderr).to.equal(0);
      // grpcurl prints one JSON object per streamed message.
      const values = [...res.stdout.matchAll(/"value":\s*(\d+)/g)].map((m) => Number(m[1]));
      expect(values).to.deep.equal([1, 2, 3]);
    });
  });
});
