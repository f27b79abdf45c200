// Benchmark server (a): a bare @grpc/grpc-js server. The service definition
// is built from the EchoService descriptor with the protobuf-es codec, and
// Echo calls the same implementation the platform serves. Nothing else: no
// interceptors, no logging, no tracing, no metrics.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { EchoRequest, EchoResponse } from "../../gen/mesh/testing/v1/echo_pb.js";
import { createEchoService, EchoService } from "../../platform/testing/echo-service.ts";

const impl = createEchoService({ instance: "bench" });

// Every method of the descriptor, so the definition is the whole service;
// grpc-js answers UNIMPLEMENTED for the ones without an implementation.
const definition: grpc.ServiceDefinition = Object.fromEntries(EchoService.methods.map((m) => [m.localName, methodDefinition(m)]));

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${EchoService.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (value) => Buffer.from(toBinary(method.input, value as never)),
    requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
    responseSerialize: (value) => Buffer.from(toBinary(method.output, value as never)),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

const echoMethod = EchoService.method.echo;
// The echo implementation ignores its handler context.
const noContext = undefined as unknown as HandlerContext;

const echo: grpc.handleUnaryCall<EchoRequest, EchoResponse> = (call, callback) => {
  Promise.resolve(impl.echo(call.request, noContext)).then(
    (out) => callback(null, create(echoMethod.output, out)),
    (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
  );
};

const server = new grpc.Server();
server.addService(definition, { echo });

const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${process.env.PORT ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
process.stderr.write(`bench-server listening ${port}\n`);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
