// Benchmark server (c): this platform, configured as in production. Every
// call goes through the whole pipeline: drain check, trace context and a
// recorded span, deadline, the audience/token check, contract validation,
// one JSON log line at info (pino to stdout; bench/run.ts points stdout at a
// file), Prometheus metrics (with the default process metrics). Health and
// reflection are registered as listen() always does.
import { createServer, exitOnSignals } from "../../platform/index.ts";
import { createEchoService, EchoService } from "../../platform/testing/index.ts";

const server = createServer({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
server.register("echo", EchoService, createEchoService({ instance: "bench" }));
const { port } = await server.listen();
server.logger.info({ port }, "listening");
process.stderr.write(`bench-server listening ${port}\n`);
exitOnSignals(server.logger, () => server.drain());
