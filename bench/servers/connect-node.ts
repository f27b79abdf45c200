// Benchmark server (b): a default @connectrpc/connect-node server on
// node:http2 (h2c), serving the same Echo implementation. Default options.
import * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createEchoService, EchoService } from "../../platform/testing/echo-service.ts";

const impl = createEchoService({ instance: "bench" });
const server = http2.createServer(connectNodeAdapter({ routes: (r) => r.service(EchoService, impl) }));

await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => resolve());
});
const address = server.address();
process.stderr.write(`bench-server listening ${typeof address === "object" && address ? address.port : 0}\n`);
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
