// The baseline server-under-test: the same ConformanceService handlers on
// plain connect-node (connectNodeAdapter, its defaults), h2c on node:http2
// for HTTP/2 and node:http for HTTP/1.1. Whatever it passes on a
// configuration, the platform's server must pass too.
//
//   connectconformance --mode server --conf test/conformance/config.yaml -- node test/conformance/connect-node-sut.ts
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { loadConformanceProtos } from "./conformance-protos.ts";
import { createConformanceImpl } from "./conformance-service.ts";
import { checkSupported, exitOnTerm, fail, HTTP_VERSION_1, readServerCompatRequest, writeServerCompatResponse } from "./sut-protocol.ts";

try {
  const protos = loadConformanceProtos();
  const request = await readServerCompatRequest(protos);
  checkSupported(request);
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(protos.service, createConformanceImpl(protos) as unknown as Partial<ServiceImpl<DescService>>);
    },
    // JSON carries google.protobuf.Any (echoed requests, error details): resolve it from the image.
    jsonOptions: { registry: protos.registry },
    readMaxBytes: request.messageReceiveLimit > 0 ? request.messageReceiveLimit : undefined,
  });
  const server = request.httpVersion === HTTP_VERSION_1 ? http.createServer(handler) : http2.createServer({}, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  exitOnTerm(() => new Promise((resolve) => server.close(() => resolve())));
  await writeServerCompatResponse(protos, "127.0.0.1", (server.address() as AddressInfo).port);
} catch (err) {
  fail(err);
}
