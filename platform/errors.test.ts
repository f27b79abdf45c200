// Errors: a code chosen by the handler reaches every client unchanged; a bug
// reaches the caller as INTERNAL with nothing but a trace id, and the log gets
// the details; errors leave as Trailers-Only, which Envoy's retry policy reads.
import * as http2 from "node:http2";
import type { IncomingHttpHeaders } from "node:http2";
import { expect } from "chai";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoService, FailRequestSchema } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, failureOf, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import type { GrpcJsCall } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";

/** grpcurl exits with 64 plus the status code when a call fails. */
const grpcurlExitFor = (code: number) => 64 + code;

/** One gRPC message in its 5-byte envelope. */
function grpcFrame<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  const body = toBinary(schema, create(schema, init));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

interface RawResponse {
  headers: IncomingHttpHeaders;
  /** The flags of the HEADERS frame that carried the response headers. */
  flags: number;
  dataFrames: number;
  trailers: IncomingHttpHeaders | undefined;
}

/** A unary gRPC call on a bare node:http2 session, reporting the frames as they came. */
function rawGrpcCall(target: string | http2.ClientHttp2Session, path: string, body: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = typeof target === "string" ? http2.connect(target) : target;
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const out: RawResponse = { headers: {}, flags: 0, dataFrames: 0, trailers: undefined };
    req.on("response", (headers, flags) => {
      out.headers = headers;
      out.flags = flags;
    });
    req.on("data", () => out.dataFrames++);
    req.on("trailers", (trailers) => (out.trailers = trailers));
    req.on("error", reject);
    req.on("close", () => {
      if (typeof target === "string") session.close();
      if (req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) reject(new Error(`stream reset with code ${req.rstCode}`));
      else resolve(out);
    });
    req.end(body);
  });
}

const NGHTTP2_FLAG_END_STREAM = 0x1;

describe("errors", function () {
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

  describe("a code the handler chose (Fail with code 5)", function () {
    it("reaches a generated Connect client as NOT_FOUND with the handler's message", async function () {
      const err = await failureOf(grpcClient(EchoService, server.url).fail({ code: 5, message: "no such widget" }));
      expect(err.code).to.equal(Code.NotFound);
      expect(err.rawMessage).to.equal("no such widget");
    });

    it("reaches the grpc-js client as NOT_FOUND with the handler's message", async function () {
      const err = await grpcJs.unary(EchoService.method.fail, { code: 5, message: "no such widget" }).then(
        () => expect.fail("Fail succeeded"),
        (e: grpc.ServiceError) => e,
      );
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.details).to.equal("no such widget");
    });

    it("reaches grpcurl as NotFound with the handler's message", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"code":5,"message":"no such widget"}', server.address, "mesh.testing.v1.EchoService/Fail"]);
      expect(res.code).to.equal(grpcurlExitFor(5));
      expect(res.stderr).to.include("Code: NotFound").and.include("Message: no such widget");
    });
  });

  describe("an unexpected exception in a handler (Fail with code 0)", function () {
    const expectNoInternals = (message: string) => {
      expect(message).to.not.include("/srv/secret");
      expect(message).to.not.include(".ts:");
      expect(message).to.not.include("unexpected failure");
      expect(message).to.not.match(/\n\s+at /);
    };

    it("reaches a generated Connect client as INTERNAL naming only a trace id, which the server logged with the stack", async function () {
      const err = await failureOf(grpcClient(EchoService, server.url).fail({ code: 0, message: "boom" }));
      expect(err.code).to.equal(Code.Internal);
      expectNoInternals(err.rawMessage);
      const traceId = /trace ([0-9a-f]{32})/.exec(err.rawMessage)?.[1];
      expect(traceId, `no trace id in "${err.rawMessage}"`).to.be.a("string");

      const line = await server.waitForLog((l) => l.level === "error" && l.trace_id === traceId);
      const logged = line.err as { stack?: string; message?: string };
      expect(logged.stack).to.include("unexpected failure: boom at /srv/secret/path.ts:42");
      expect(logged.stack).to.include("echo-service.ts");
      expect(line.path).to.equal("/mesh.testing.v1.EchoService/Fail");
      // The call's own rpc line carries the same trace id and the code the caller saw.
      const rpcLine = await server.waitForLog((l) => l.msg === "rpc" && l.trace_id === traceId);
      expect(rpcLine).to.include({ method: "Fail", code: "INTERNAL" });
    });

    it("reaches the grpc-js client as INTERNAL with no internals in the message", async function () {
      const err = await grpcJs.unary(EchoService.method.fail, { code: 0, message: "boom" }).then(
        () => expect.fail("Fail succeeded"),
        (e: grpc.ServiceError) => e,
      );
      expect(err.code).to.equal(grpc.status.INTERNAL);
      expectNoInternals(err.details);
      expect(err.details).to.match(/trace [0-9a-f]{32}/);
    });

    it("reaches grpcurl as Internal with no internals in the message", async function () {
      const res = await grpcurl(["-plaintext", "-d", '{"code":0,"message":"boom"}', server.address, "mesh.testing.v1.EchoService/Fail"]);
      expect(res.code).to.equal(grpcurlExitFor(13));
      expect(res.stderr).to.include("Code: Internal");
      expectNoInternals(res.stderr);
    });
  });

  it("sends an error as Trailers-Only: one HEADERS frame with grpc-status and END_STREAM, no DATA", async function () {
    const res = await rawGrpcCall(server.url, "/mesh.testing.v1.EchoService/Fail", grpcFrame(FailRequestSchema, { code: 14, message: "try elsewhere" }));
    expect(res.headers[":status"]).to.equal(200);
    expect(res.headers["content-type"]).to.equal("application/grpc");
    expect(res.headers["grpc-status"]).to.equal("14");
    expect(decodeURIComponent(String(res.headers["grpc-message"]))).to.equal("try elsewhere");
    expect(res.flags & NGHTTP2_FLAG_END_STREAM, "END_STREAM on the response HEADERS").to.equal(NGHTTP2_FLAG_END_STREAM);
    expect(res.dataFrames).to.equal(0);
    expect(res.trailers).to.equal(undefined);
  });

  it("sends a success as HEADERS, DATA, then trailers with grpc-status 0", async function () {
    // The contrast that makes the Trailers-Only check mean something.
    const res = await rawGrpcCall(server.url, "/mesh.testing.v1.EchoService/Echo", grpcFrame(EchoRequestSchema, { message: "ok" }));
    expect(res.flags & NGHTTP2_FLAG_END_STREAM).to.equal(0);
    expect(res.dataFrames).to.be.at.least(1);
    expect(res.trailers?.["grpc-status"]).to.equal("0");
  });

  describe("an unknown method", function () {
    it("answers UNIMPLEMENTED over gRPC, for a known service and an unknown one", async function () {
      for (const path of ["/mesh.testing.v1.EchoService/NoSuchMethod", "/no.such.v1.Service/Echo"]) {
        const err = await grpcJs.unaryRaw(path, Buffer.alloc(0)).then(
          () => expect.fail(`${path} answered OK`),
          (e: grpc.ServiceError) => e,
        );
        expect(err.code, path).to.equal(grpc.status.UNIMPLEMENTED);
      }
    });

    it("answers UNIMPLEMENTED as Trailers-Only", async function () {
      const res = await rawGrpcCall(server.url, "/mesh.testing.v1.EchoService/NoSuchMethod", Buffer.alloc(5));
      expect(res.headers["grpc-status"]).to.equal(String(grpc.status.UNIMPLEMENTED));
      expect(res.flags & NGHTTP2_FLAG_END_STREAM).to.equal(NGHTTP2_FLAG_END_STREAM);
    });

    it("answers 404 over the Connect protocol, which Connect clients read as UNIMPLEMENTED", async function () {
      const res = await fetch(`${server.url}/mesh.testing.v1.EchoService/NoSuchMethod`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).to.equal(404);
    });
  });

  describe("afterwards", function () {
    // Mocha runs a suite's own tests before its nested suites: this one last.
    it("still serves after every error above", async function () {
      const res = await grpcClient(EchoService, server.url).echo({ message: "after errors" });
      expect(res.message).to.equal("after errors");
    });
  });

  describe("a client that resets its stream mid-call", function () {
    // Its own process: the failure this guards against takes the process down.
    let victim: ServerProcess;

    before(async function () {
      victim = await startServerProcess("test/fixtures/echo-server.ts", { ECHO_INSTANCE: "victim" });
    });

    after(async function () {
      await victim?.stop();
    });

    // connect-node clients (the platform's own clients.ts among them) reset
    // with INTERNAL_ERROR when their deadline passes; grpc-js with CANCEL.
    for (const [name, rstCode] of [
      ["CANCEL", http2.constants.NGHTTP2_CANCEL],
      ["INTERNAL_ERROR", http2.constants.NGHTTP2_INTERNAL_ERROR],
    ] as const) {
      it(`leaves the server serving after RST_STREAM ${name} on an in-flight Echo`, async function () {
        const session = http2.connect(victim.url);
        try {
          const req = session.request({ ":method": "POST", ":path": "/mesh.testing.v1.EchoService/Echo", "content-type": "application/grpc", te: "trailers" });
          req.on("error", () => {
            // The reset is this test's own doing.
          });
          await new Promise<void>((resolve) => req.end(grpcFrame(EchoRequestSchema, { message: "abandoned", sleepMs: 1000 }), resolve));
          await new Promise<void>((resolve) => req.close(rstCode, resolve));
          // Frames on one connection arrive in order: the server has handled
          // the reset before it sees this call's HEADERS.
          const res = await rawGrpcCall(session, "/mesh.testing.v1.EchoService/Echo", grpcFrame(EchoRequestSchema, { message: `after ${name}` })).catch(
            async (err: Error) => {
              // Only on failure: give a dying process a moment to report its exit.
              const exit = await Promise.race([victim.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
              throw new Error(`the next call on the connection failed (${err.message}); server exit: ${JSON.stringify(exit ?? "still running")}`);
            },
          );
          expect(res.trailers?.["grpc-status"]).to.equal("0");
        } finally {
          session.close();
        }
        const res = await grpcClient(EchoService, victim.url).echo({ message: `after ${name}` });
        expect(res.message).to.equal(`after ${name}`);
      });
    }
  });
});
