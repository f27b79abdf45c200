// The gRPC interop server: grpc.testing.TestService (test-service.ts) and
// ORCA's OpenRcaService on the platform's createServer(), run as its own
// process by grpc-interop.test.ts. The schema is read at start from the
// descriptor set grpc-go's grpc_testing package describes:
//
//   INTEROP_DESCRIPTORS  a file written by tools/bin/grpc-interop-descriptors;
//                        unset: that program is run and its stdout read
//   INTEROP_SERVER_ID    SimpleResponse.server_id (default interop-<pid>)
//   PORT, HOST           as for every platform server (default: any free port on 127.0.0.1)
//
// Prints the platform's JSON log line {"msg":"listening","port":...} once serving.
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createServer, exitOnSignals, ServingStatus } from "@shop/platform";
import { loadInteropRegistry } from "./descriptors.ts";
import { createInteropServices } from "./test-service.ts";

const registry = loadInteropRegistry(process.env.INTEROP_DESCRIPTORS || undefined);
const services = createInteropServices(registry, { serverId: process.env.INTEROP_SERVER_ID ?? `interop-${process.pid}` });

const server = createServer({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? "127.0.0.1" });
for (const served of [services.testService, services.orca]) {
  server.register("interop", served.service, served.impl as unknown as Partial<ServiceImpl<DescService>>);
}
// The platform marks only the shop's own services SERVING on its health
// service (not grpc.*): say so for TestService, which Envoy's health checks ask about.
server.health.set(services.testService.service.typeName, ServingStatus.SERVING);
const { port } = await server.listen();
exitOnSignals(server.logger, () => server.drain());
server.logger.info({ port, services: server.services().map((s) => s.typeName) }, "listening");
