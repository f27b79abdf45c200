// connect-node answers a Connect unary request whose binary body does not
// decode with HTTP 500 `internal` ("parse binary: ..."): the client's
// mistake reported as the server's. The same bytes over the lean gRPC path
// answer INVALID_ARGUMENT. This wraps the router's Connect handlers so that
// such an answer becomes HTTP 400 `invalid_argument` with a message naming
// the type, and counts as a refusal (reason "decoding"). Every other
// answer passes through untouched.
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { RefusalReporter } from "./telemetry/refusals.ts";

const PARSE_FAILURE = "parse binary:";

export function answerParseErrorsAsInvalidArgument(router: ConnectRouter, refusals: RefusalReporter): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) {
    const original = handlers[i];
    if (!original.protocolNames.includes("connect") || original.method.methodKind !== "unary") continue;
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      const res = await original(req);
      if (res.status !== 500 || !res.body || !(res.header?.get("content-type") ?? "").startsWith("application/json")) return res;
      const chunks: Uint8Array[] = [];
      for await (const chunk of res.body) chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      let error: { code?: string; message?: string } = {};
      try {
        error = JSON.parse(bytes.toString("utf8")) as typeof error;
      } catch {
        // Not an error body of ours: pass it on as it was.
      }
      if (error.code !== "internal" || !error.message?.startsWith(PARSE_FAILURE)) return { ...res, body: once(bytes) };
      const message = `malformed request message: cannot decode ${original.method.input.typeName}`;
      refusals.report("decoding", { path: original.requestPath, protocol: "connect" }, message);
      const body = Buffer.from(JSON.stringify({ code: "invalid_argument", message }));
      const header = new Headers(res.header);
      header.set("content-length", String(body.length));
      return { ...res, status: 400, header, body: once(body) };
    };
    handlers[i] = Object.assign(wrapped, {
      protocolNames: original.protocolNames,
      service: original.service,
      method: original.method,
      requestPath: original.requestPath,
      allowedMethods: original.allowedMethods,
      supportedContentType: original.supportedContentType,
    });
  }
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
