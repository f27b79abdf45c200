// A bare node:http2 server (cleartext, no options, a trivial handler): the
// baseline h2spec.test.ts compares the platform's server with. Run as its own
// process; prints {"msg":"listening","port":...} as the platform's servers do,
// so test/support/process.ts startServerProcess can start it. PORT (default 0: any free port).
import { createServer } from "node:http2";

const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("hello from bare node:http2\n");
});
// A client that breaks the protocol gets the stream or session torn down by
// node:http2 itself; the process must not die of it.
server.on("sessionError", () => undefined);
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ level: "info", msg: "listening", port })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
