// connectrpc.conformance.v1.ConformanceService, as its service.proto and
// docs/testing_servers.md describe it. One implementation, served by both
// servers-under-test: the platform's createServer() and plain connect-node
// (the baseline), so any difference between their results is the transport's.
//
// The service is loaded at run time (conformance-protos.ts), so messages are
// dynamic: the interfaces below describe the fields read and written.
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import type { ConformanceProtos } from "./conformance-protos.ts";

interface Header {
  name: string;
  value: string[];
}

interface ErrorDefinition {
  code: number;
  message?: string;
  details: Any[];
}

interface UnaryResponseDefinition {
  responseHeaders: Header[];
  response: { case: "responseData"; value: Uint8Array } | { case: "error"; value: ErrorDefinition } | { case: undefined; value?: undefined };
  responseTrailers: Header[];
  responseDelayMs: number;
  rawResponse?: unknown;
}

interface StreamResponseDefinition {
  responseHeaders: Header[];
  responseData: Uint8Array[];
  responseDelayMs: number;
  error?: ErrorDefinition;
  responseTrailers: Header[];
  rawResponse?: unknown;
}

type UnaryLikeRequest = Message & { responseDefinition?: UnaryResponseDefinition };
type StreamRequest = Message & { responseDefinition?: StreamResponseDefinition };
type BidiRequest = StreamRequest & { fullDuplex: boolean };

interface RequestInfo {
  requestHeaders?: Header[];
  timeoutMs?: bigint;
  requests: Any[];
  connectGetInfo?: { queryParams: Header[] };
}

type Handler = (input: unknown, ctx: HandlerContext) => unknown;

/**
 * The implementation, keyed by method local name. Unimplemented is left out
 * on purpose: the framework must answer it with UNIMPLEMENTED by itself.
 */
export function createConformanceImpl(protos: ConformanceProtos): Record<string, Handler> {
  const schemas = {
    unaryRequest: protos.message("UnaryRequest"),
    unaryResponse: protos.message("UnaryResponse"),
    idempotentUnaryRequest: protos.message("IdempotentUnaryRequest"),
    idempotentUnaryResponse: protos.message("IdempotentUnaryResponse"),
    clientStreamRequest: protos.message("ClientStreamRequest"),
    clientStreamResponse: protos.message("ClientStreamResponse"),
    serverStreamRequest: protos.message("ServerStreamRequest"),
    serverStreamResponse: protos.message("ServerStreamResponse"),
    bidiStreamRequest: protos.message("BidiStreamRequest"),
    bidiStreamResponse: protos.message("BidiStreamResponse"),
    requestInfo: protos.message("ConformancePayload.RequestInfo"),
  };

  /** Headers, timeout and (for a Connect GET) query parameters, plus the given requests. */
  function requestInfo(ctx: HandlerContext, requests: Any[]): RequestInfo {
    const requestHeaders: Header[] = [];
    ctx.requestHeader.forEach((value, name) => requestHeaders.push({ name, value: [value] }));
    const info: RequestInfo = { requestHeaders, requests };
    const timeout = ctx.timeoutMs();
    if (timeout !== undefined) info.timeoutMs = BigInt(Math.max(0, Math.floor(timeout)));
    if (ctx.requestMethod === "GET") {
      const queryParams: Header[] = [];
      const params = new URL(ctx.url, "http://localhost").searchParams;
      for (const name of new Set(params.keys())) queryParams.push({ name, value: params.getAll(name) });
      info.connectGetInfo = { queryParams };
    }
    return info;
  }

  function pack(schema: DescMessage, message: Message): Any {
    return anyPack(schema, message);
  }

  function setHeaders(ctx: HandlerContext, headers: Header[], trailers: Header[]): void {
    for (const h of headers) for (const v of h.value) ctx.responseHeader.append(h.name, v);
    for (const h of trailers) for (const v of h.value) ctx.responseTrailer.append(h.name, v);
  }

  /** The requested error; with the request info appended to its details when given. */
  function requestedError(def: ErrorDefinition, info: RequestInfo | undefined): ConnectError {
    const err = new ConnectError(def.message ?? "", def.code as Code);
    for (const detail of def.details) {
      err.details.push({ type: detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1), value: detail.value });
    }
    if (info) {
      const value = toBinary(schemas.requestInfo, create(schemas.requestInfo, info as never));
      err.details.push({ type: schemas.requestInfo.typeName, value });
    }
    return err;
  }

  function refuseRaw(def: { rawResponse?: unknown } | undefined): void {
    // Only the suite's reference server honours raw_response.
    if (def?.rawResponse !== undefined) {
      throw new ConnectError("raw_response is only supported by the reference server", Code.Unimplemented);
    }
  }

  /** Unary and client-stream: one response or the requested error, after the delay. */
  async function respondOnce(
    ctx: HandlerContext,
    def: UnaryResponseDefinition | undefined,
    info: RequestInfo,
    responseSchema: DescMessage,
  ): Promise<Message> {
    refuseRaw(def);
    if (def) setHeaders(ctx, def.responseHeaders, def.responseTrailers);
    const failure = def?.response.case === "error" ? requestedError(def.response.value, info) : undefined;
    const data = def?.response.case === "responseData" ? def.response.value : new Uint8Array(0);
    await sleep(def?.responseDelayMs ?? 0, ctx);
    if (failure) throw failure;
    return create(responseSchema, { payload: { data, requestInfo: info } } as never);
  }

  /** Server stream and half-duplex bidi: every requested response, then the error if any. */
  async function* respondStream(
    ctx: HandlerContext,
    def: StreamResponseDefinition | undefined,
    info: RequestInfo,
    responseSchema: DescMessage,
  ): AsyncGenerator<Message> {
    if (!def) return;
    let sent = 0;
    for (const data of def.responseData) {
      await sleep(def.responseDelayMs, ctx);
      yield create(responseSchema, { payload: { data, requestInfo: sent === 0 ? info : undefined } } as never);
      sent++;
    }
    if (def.error) throw requestedError(def.error, sent === 0 ? info : undefined);
  }

  const unary: Handler = (input, ctx) => {
    const req = input as UnaryLikeRequest;
    return respondOnce(ctx, req.responseDefinition, requestInfo(ctx, [pack(schemas.unaryRequest, req)]), schemas.unaryResponse);
  };

  const idempotentUnary: Handler = (input, ctx) => {
    const req = input as UnaryLikeRequest;
    return respondOnce(ctx, req.responseDefinition, requestInfo(ctx, [pack(schemas.idempotentUnaryRequest, req)]), schemas.idempotentUnaryResponse);
  };

  const clientStream: Handler = async (input, ctx) => {
    let def: UnaryResponseDefinition | undefined;
    let first = true;
    const requests: Any[] = [];
    for await (const item of input as AsyncIterable<UnaryLikeRequest>) {
      // Only the first message's definition counts.
      if (first) def = item.responseDefinition;
      first = false;
      requests.push(pack(schemas.clientStreamRequest, item));
    }
    return respondOnce(ctx, def, requestInfo(ctx, requests), schemas.clientStreamResponse);
  };

  const serverStream: Handler = (input, ctx) => {
    const req = input as StreamRequest;
    const def = req.responseDefinition;
    refuseRaw(def);
    // Headers and trailers are set even when nothing is sent.
    if (def) setHeaders(ctx, def.responseHeaders, def.responseTrailers);
    return respondStream(ctx, def, requestInfo(ctx, [pack(schemas.serverStreamRequest, req)]), schemas.serverStreamResponse);
  };

  const bidiStream: Handler = async function* (input, ctx) {
    const it = (input as AsyncIterable<BidiRequest>)[Symbol.asyncIterator]();
    let def: StreamResponseDefinition | undefined;
    let fullDuplex = false;
    let first = true;
    // Full duplex: the requests since the last response. Half duplex: all of them.
    let pending: Any[] = [];
    let sent = 0;
    for (;;) {
      const next = await it.next();
      if (next.done) break;
      const req = next.value;
      pending.push(pack(schemas.bidiStreamRequest, req));
      if (first) {
        first = false;
        def = req.responseDefinition;
        fullDuplex = req.fullDuplex;
        refuseRaw(def);
        if (def) setHeaders(ctx, def.responseHeaders, def.responseTrailers);
      }
      if (!fullDuplex) continue;
      const responses = def?.responseData ?? [];
      if (sent >= responses.length) {
        // Nothing left to answer with: stop reading, end with the error if one was asked for.
        break;
      }
      const info: RequestInfo = sent === 0 ? requestInfo(ctx, pending) : { requests: pending };
      await sleep(def!.responseDelayMs, ctx);
      yield create(schemas.bidiStreamResponse, { payload: { data: responses[sent], requestInfo: info } } as never);
      sent++;
      pending = [];
    }
    if (!def) return;
    // Half duplex (or a full-duplex definition with more responses than requests).
    for (; sent < def.responseData.length; sent++) {
      await sleep(def.responseDelayMs, ctx);
      const info = sent === 0 ? requestInfo(ctx, pending) : undefined;
      yield create(schemas.bidiStreamResponse, { payload: { data: def.responseData[sent], requestInfo: info } } as never);
    }
    if (def.error) throw requestedError(def.error, sent === 0 ? requestInfo(ctx, pending) : undefined);
  };

  return { unary, idempotentUnary, clientStream, serverStream, bidiStream };
}

/** Waits ms, or fails with the call's own reason (deadline, cancel) if it ends first. */
function sleep(ms: number, ctx: HandlerContext): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  const signal = ctx.signal;
  if (signal.aborted) return Promise.reject(ConnectError.from(signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
