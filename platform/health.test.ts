// grpc.health.v1.Health as Envoy, Kubernetes probes and operators call it.
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/health/v1/health_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

describe("health", function () {
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
  });

  after(async function () {
    await server?.stop();
  });

  for (const name of ["", "mesh.testing.v1.EchoService"]) {
    const label = name === "" ? 'the whole server ("")' : name;

    it(`Check answers SERVING for ${label} to a generated Connect client`, async function () {
      const res = await grpcClient(Health, server.url).check({ service: name });
      expect(res.status).to.equal(Status.SERVING);
    });

    it(`Check answers SERVING for ${label} to the grpc-js client`, async function () {
      const client = createGrpcJsClient(server.address);
      try {
        const res = await client.unary(Health.method.check, { service: name });
        expect(res.status).to.equal(Status.SERVING);
      } finally {
        client.close();
      }
    });

    it(`Check answers SERVING for ${label} to grpcurl`, async function () {
      const res = await grpcurl(["-plaintext", "-d", JSON.stringify({ service: name }), server.address, "grpc.health.v1.Health/Check"]);
      expect(res.code, res.stderr).to.equal(0);
      expect(JSON.parse(res.stdout)).to.deep.equal({ status: "SERVING" });
    });
  }

  it("Check answers NOT_FOUND for a name the server does not serve, to every client", async function () {
    const err = await failureOf(grpcClient(Health, server.url).check({ service: "no.such.Service" }));
    expect(err.code).to.equal(Code.NotFound);

    const client = createGrpcJsClient(server.address);
    try {
      const grpcErr = await client.unary(Health.method.check, { service: "no.such.Service" }).then(
        () => expect.fail("Check of an unknown name succeeded"),
        (e: grpc.ServiceError) => e,
      );
      expect(grpcErr.code).to.equal(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }

    const res = await grpcurl(["-plaintext", "-d", '{"service":"no.such.Service"}', server.address, "grpc.health.v1.Health/Check"]);
    expect(res.stderr).to.include("Code: NotFound");
  });

  it("Watch streams the current status first, SERVING for the server", async function () {
    const abort = new AbortController();
    const stream = grpcClient(Health, server.url).watch({ service: "" }, { signal: abort.signal });
    try {
      for await (const res of stream) {
        expect(res.status).to.equal(Status.SERVING);
        return;
      }
      expect.fail("Watch ended without a status");
    } finally {
      abort.abort();
    }
  });

  it("Watch reports SERVICE_UNKNOWN for an unknown name instead of failing", async function () {
    const abort = new AbortController();
    const stream = grpcClient(Health, server.url).watch({ service: "no.such.Service" }, { signal: abort.signal });
    try {
      for await (const res of stream) {
        expect(res.status).to.equal(Status.SERVICE_UNKNOWN);
        return;
      }
      expect.fail("Watch ended without a status");
    } finally {
      abort.abort();
    }
  });
});
