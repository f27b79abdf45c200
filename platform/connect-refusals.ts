// What connect-node (Connect and gRPC-Web) refuses before a call reaches the
// pipeline is counted and logged like the lean gRPC path's refusals: an HTTP
// error answer for a call the pipeline never saw is a refusal (415: content
// type; 405: protocol; a Connect error body: by its code). And connect-node
// answers a Connect unary request whose binary body does not parse with HTTP
// 500 `internal` ("parse binary: ..."), the client's mistake reported as the
// server's: that answer becomes HTTP 400 `invalid_argument` naming the type,
// as the same bytes over gRPC answer. Answers of calls that reached the
// pipeline pass through untouched (the pipeline logged and counted them).
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { peerKey, reachedPipelineKey } from "./rpc-pipeline.ts";
import type { RefusalReason } from "./telemetry/metrics.ts";
import { clip } from "./telemetry/refusals.ts";
import type { RefusalReporter } from "./telemetry/refusals.ts";

const PARSE_FAILURE = "parse binary:";

const reasonByConnectCode: Record<string, RefusalReason> = {
  invalid_argument: "decoding",
  resource_exhausted: "size",
  unimplemented: "compression",
};

export function countConnectRefusals(router: ConnectRouter, refusals: RefusalReporter): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) {
    const original = handlers[i];
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      const res = await original(req);
      if (res.status < 400 || req.contextValues?.get(reachedPipelineKey)?.reached) return res;
      const fields = { path: original.requestPath, peer: req.contextValues?.get(peerKey), status: res.status };
      if (res.status === 415) {
        refusals.report("content_type", fields, `unsupported content-type ${clip(req.header.get("content-type") ?? "")}`);
        return res;
      }
      if (res.status === 405) {
        refusals.report("protocol", fields, `method ${clip(req.method)} not allowed`);
        return res;
      }
      if (!res.body || !(res.header?.get("content-type") ?? "").startsWith("application/json")) {
        refusals.report("protocol", fields, `answered HTTP ${res.status}`);
        return res;
      }
      const bytes = await readAll(res.body);
      let error: { code?: string; message?: string } = {};
      try {
        error = JSON.parse(bytes.toString("utf8")) as typeof error;
      } catch {
        // Not a Connect error body: counted by its status alone.
      }
      if (error.code === "internal" && error.message?.startsWith(PARSE_FAILURE)) {
        const message = `malformed request message: cannot decode ${original.method.input.typeName}`;
        refusals.report("decoding", fields, message);
        const body = Buffer.from(JSON.stringify({ code: "invalid_argument", message }));
        const header = new Headers(res.header);
        header.set("content-length", String(body.length));
        return { ...res, status: 400, header, body: once(body) };
      }
      refusals.report(reasonByConnectCode[error.code ?? ""] ?? "protocol", fields, clip(error.message ?? `answered HTTP ${res.status}`));
      return { ...res, body: once(bytes) };
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

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
