// Diagnostic server (d), not in the default `make bench` trio: the platform's
// lean gRPC path (platform/grpc-http2-path.ts) on node:http2 with the echo
// implementation unwrapped: no pipeline, so no logging, tracing, metrics,
// auth, validation or deadline. Comparing it with (a) and (c) splits the
// platform's cost into transport and interceptors. BENCH_ONLY=a,c,d.
import * as http2 from "node:http2";
import { createGrpcStreamHandler, isGrpcRequest } from "../../platform/grpc-http2-path.ts";
import type { GrpcRoute } from "../../platform/grpc-http2-path.ts";
import { createEchoService, EchoService } from "../../platform/testing/echo-service.ts";
import { createLogger } from "../../platform/telemetry/logger.ts";
import { createRpcMetrics } from "../../platform/telemetry/metrics.ts";
import { createRefusalReporter } from "../../platform/telemetry/refusals.ts";

const impl = createEchoService({ instance: "bench" });
const method = EchoService.method.echo;
const route: GrpcRoute = { service: EchoService, method, impl: (input, ctx) => impl.echo(input as never, ctx) };
const logger = createLogger();
const handle = createGrpcStreamHandler({
  lookup: (p) => (p === `/${EchoService.typeName}/${method.name}` ? route : undefined),
  maxMessageBytes: 4 * 1024 * 1024,
  requestBodyTimeoutMs: 30_000,
  refusals: createRefusalReporter({ logger, metrics: createRpcMetrics({ defaultMetrics: false }) }),
  onDefect: (err, fields) => logger.error({ err, ...fields }, "transport defect"),
});

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  if (isGrpcRequest(headers)) handle(stream, headers);
  else stream.respond({ ":status": 404 }, { endStream: true });
});
await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => resolve());
});
const address = server.address();
process.stderr.write(`bench-server listening ${typeof address === "object" && address ? address.port : 0}\n`);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
