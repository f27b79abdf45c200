// The platform's server-under-test: ConformanceService registered on
// createServer() from @shop/platform, exactly as a service would be (the lean
// gRPC path, connect-node for Connect and gRPC-Web, the whole RPC pipeline),
// on one port that takes HTTP/1.1 and h2c alike.
//
//   connectconformance --mode server --conf test/conformance/config.yaml -- node test/conformance/platform-sut.ts
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createLogger, createServer } from "@shop/platform";
import type { ServerOptions } from "@shop/platform";
import { loadConformanceProtos } from "./conformance-protos.ts";
import { createConformanceImpl } from "./conformance-service.ts";
import { checkSupported, exitOnTerm, fail, readServerCompatRequest, writeServerCompatResponse } from "./sut-protocol.ts";

try {
  const protos = loadConformanceProtos();
  const request = await readServerCompatRequest(protos);
  checkSupported(request);
  const options: ServerOptions = {
    port: 0,
    host: "127.0.0.1",
    // stdout is the runner's channel: logs go to stderr, errors only.
    logger: createLogger({ level: process.env.LOG_LEVEL ?? "error", destination: { write: (line: string) => process.stderr.write(line) } }),
    reflection: false,
    drainTimeoutMs: 1000,
    // JSON (Connect and application/grpc+json) carries google.protobuf.Any: echoed requests, error details.
    jsonRegistry: protos.registry,
  };
  if (request.messageReceiveLimit > 0) options.maxMessageBytes = request.messageReceiveLimit;
  const server = createServer(options);
  server.register("conformance", protos.service, createConformanceImpl(protos) as unknown as Partial<ServiceImpl<DescService>>);
  const { port } = await server.listen();
  exitOnTerm(() => server.drain());
  await writeServerCompatResponse(protos, "127.0.0.1", port);
} catch (err) {
  fail(err);
}
