// The lean gRPC path: HTTP/2 streams with content-type application/grpc are
// framed here, straight on node:http2, and handed to the same wrapped
// implementations connect-node serves for Connect and gRPC-Web. It exists
// because the default connect-node server costs 3-4x on unary gRPC (see
// BENCHMARKS.md); everything above framing lives in rpc-pipeline.ts.
//
// Errors before the first message leave as Trailers-Only (one HEADERS frame
// with END_STREAM carrying grpc-status), which is what Envoy's retry_on and
// gRPC outlier detection can read.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerKey, rawHeadersKey } from "./rpc-pipeline.ts";

export interface GrpcRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: (input: unknown, ctx: HandlerContext) => unknown;
}

export interface GrpcPathOptions {
  lookup(path: string): GrpcRoute | undefined;
  /** Largest request message accepted, in bytes. Larger ones answer RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
}

const FRAME_HEADER = 5;

export function isGrpcRequest(headers: IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  // application/grpc, application/grpc+proto; never application/grpc-web.
  return type !== undefined && type.startsWith("application/grpc") && !type.startsWith("application/grpc-web");
}

export function createGrpcStreamHandler(options: GrpcPathOptions) {
  const { maxMessageBytes } = options;

  return function handleGrpcStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const path = headers[":path"] ?? "";
    const route = options.lookup(path);
    if (!route) {
      sendError(stream, new ConnectError(`unknown method ${path}`, Code.Unimplemented));
      stream.resume();
      return;
    }
    const type = headers["content-type"] ?? "";
    if (type !== "application/grpc" && type !== "application/grpc+proto") {
      sendError(stream, new ConnectError(`unsupported content-type ${type}`, Code.Internal));
      stream.resume();
      return;
    }
    const timeout = parseTimeout(asString(headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    if (timeout.error) {
      sendError(stream, timeout.error);
      stream.resume();
      return;
    }
    const call = createCallContext(stream, route, path, timeout.timeoutMs, headers, peerOf(stream));
    const ctx = call.ctx;

    const kind = route.method.methodKind;
    if (kind === "unary" || kind === "server_streaming") {
      readSingleMessage(stream, route.method.input, maxMessageBytes, (err, message) => {
        if (err) return sendError(stream, err);
        if (kind === "unary") void runUnary(stream, route, message!, call);
        else void runServerStream(stream, route, message!, call);
      });
      return;
    }
    const requests = readMessages(stream, route.method.input, maxMessageBytes);
    if (kind === "client_streaming") void runUnary(stream, route, requests, call);
    else void runServerStream(stream, route, requests, call);
  };
}

interface CallContext {
  readonly ctx: HandlerContext;
  /** The response headers and trailers the handler set, if it set any. */
  header(): Headers | undefined;
  trailer(): Headers | undefined;
  /** The call is over: stop the deadline timer; a later close aborts nothing. */
  finish(): void;
}

/**
 * The HandlerContext of one call, built for the hot path: response headers
 * and trailers are created only if the handler touches them, and the signal
 * aborts only when the client goes away or the deadline passes during the
 * call, not on every normal end.
 */
function createCallContext(
  stream: ServerHttp2Stream,
  route: GrpcRoute,
  url: string,
  timeoutMs: number | undefined,
  rawHeaders: IncomingHttpHeaders,
  peer: string,
): CallContext {
  let requestHeader: Headers | undefined;
  let abort: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  // grpc-timeout can be in microseconds or nanoseconds: whole milliseconds here.
  const deadlineAt = timeoutMs === undefined ? undefined : Date.now() + Math.floor(timeoutMs);
  const gone = (reason: string) => {
    if (!finished) abort?.abort(new ConnectError(reason, Code.Canceled));
  };
  // A client that gives up (its deadline passed, or it cancelled) resets the
  // stream; node:http2 reports that as an error on the stream, which must not
  // take the process down. The handler learns of it through its signal.
  stream.on("error", (err: Error) => gone(err.message.includes("NGHTTP2_CANCEL") ? "stream cancelled by the client" : "stream reset by the client"));
  // The signal, its deadline timer and its close listener exist only for
  // handlers that ask for them; most unary handlers never do.
  const signal = () => {
    if (!abort) {
      const controller = new AbortController();
      abort = controller;
      stream.once("close", () => gone("stream closed by the client"));
      if (deadlineAt !== undefined && !finished) {
        timer = setTimeout(() => {
          if (!finished) controller.abort(new ConnectError("the call's deadline passed", Code.DeadlineExceeded));
        }, Math.max(0, deadlineAt - Date.now()));
      }
    }
    return abort.signal;
  };
  const ctx: HandlerContext = {
    service: route.service,
    method: route.method,
    get signal() {
      return signal();
    },
    timeoutMs: () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now()),
    requestMethod: "POST",
    get requestHeader() {
      return (requestHeader ??= toHeaders(rawHeaders));
    },
    get responseHeader() {
      return (responseHeader ??= new Headers());
    },
    get responseTrailer() {
      return (responseTrailer ??= new Headers());
    },
    protocolName: "grpc",
    values: createContextValues().set(peerKey, peer).set(rawHeadersKey, rawHeaders),
    url,
  };
  return {
    ctx,
    header: () => responseHeader,
    trailer: () => responseTrailer,
    finish() {
      finished = true;
      clearTimeout(timer);
    },
  };
}

async function runUnary(stream: ServerHttp2Stream, route: GrpcRoute, input: unknown, call: CallContext): Promise<void> {
  let output: Message;
  try {
    output = toMessage(route.method.output, await route.impl(input, call.ctx));
  } catch (err) {
    call.finish();
    return sendError(stream, asConnectError(err), call.header());
  }
  call.finish();
  if (stream.destroyed) return;
  stream.respond(responseHeaders(call.header()), { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(okTrailers(call.trailer())));
  stream.end(frame(toBinary(route.method.output, output)));
}

async function runServerStream(stream: ServerHttp2Stream, route: GrpcRoute, input: unknown, call: CallContext): Promise<void> {
  let headersSent = false;
  let failure: ConnectError | undefined;
  try {
    for await (const item of route.impl(input, call.ctx) as AsyncIterable<unknown>) {
      if (stream.destroyed) return;
      if (!headersSent) {
        stream.respond(responseHeaders(call.header()), { waitForTrailers: true });
        headersSent = true;
      }
      const bytes = frame(toBinary(route.method.output, toMessage(route.method.output, item)));
      if (!stream.write(bytes)) await waitForDrain(stream);
    }
  } catch (err) {
    failure = asConnectError(err);
  } finally {
    call.finish();
  }
  if (stream.destroyed) return;
  if (!headersSent) {
    // Nothing sent yet: a clean end or an error both go out as Trailers-Only.
    return sendError(stream, failure, call.header(), call.trailer());
  }
  stream.once("wantTrailers", () => stream.sendTrailers(failure ? toOutgoing(setTrailerStatus(call.trailer() ?? new Headers(), failure)) : okTrailers(call.trailer())));
  stream.end();
}

function okTrailers(trailer: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = trailer ? toOutgoing(trailer) : {};
  out["grpc-status"] = "0";
  return out;
}

function sendError(stream: ServerHttp2Stream, error: ConnectError | undefined, header?: Headers, trailer?: Headers): void {
  if (stream.destroyed || stream.headersSent) return;
  const status = setTrailerStatus(new Headers(trailer), error);
  const out = responseHeaders(header);
  for (const [k, v] of status) out[k] = v;
  stream.respond(out, { endStream: true });
}

function responseHeaders(header: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc", "grpc-accept-encoding": "identity" };
  if (header) for (const [k, v] of header) out[k] = v;
  return out;
}

function toOutgoing(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of headers) out[k] = v;
  return out;
}

// Reading a socket's address asks the kernel each time: once per connection.
const peers = new WeakMap<object, string>();
function peerOf(stream: ServerHttp2Stream): string {
  const session = stream.session;
  if (!session) return "";
  let peer = peers.get(session);
  if (peer === undefined) {
    const socket = session.socket;
    peer = `${socket.remoteAddress}:${socket.remotePort}`;
    peers.set(session, peer);
  }
  return peer;
}

function toHeaders(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const key in headers) {
    if (key.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[key];
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else if (value !== undefined) out.set(key, value);
  }
  return out;
}

function asString(value: string | string[] | undefined): string | null {
  return value === undefined ? null : Array.isArray(value) ? value[0] : value;
}

function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, FRAME_HEADER);
  return out;
}

function toMessage(schema: DescMessage, value: unknown): Message {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

function asConnectError(err: unknown): ConnectError {
  return err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
}

function waitForDrain(stream: ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/** Parses one enveloped message, checking the flag byte and size. */
function decodeEnvelope(schema: DescMessage, buf: Buffer, offset: number, maxMessageBytes: number): { message?: Message; error?: ConnectError; next: number } {
  const flags = buf[offset];
  const length = buf.readUInt32BE(offset + 1);
  if (length > maxMessageBytes) {
    return { error: new ConnectError(`request message of ${length} bytes exceeds the limit of ${maxMessageBytes}`, Code.ResourceExhausted), next: offset };
  }
  if (flags & 1) {
    return { error: new ConnectError("compressed request messages are not supported (grpc-accept-encoding: identity)", Code.Unimplemented), next: offset };
  }
  if (buf.length < offset + FRAME_HEADER + length) return { next: offset };
  const start = offset + FRAME_HEADER;
  try {
    return { message: fromBinary(schema, buf.subarray(start, start + length)), next: start + length };
  } catch {
    return { error: new ConnectError(`malformed request message: cannot decode ${schema.typeName}`, Code.InvalidArgument), next: offset };
  }
}

function readSingleMessage(
  stream: ServerHttp2Stream,
  schema: DescMessage,
  maxMessageBytes: number,
  done: (err: ConnectError | undefined, message?: Message) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let checked = false;
  let failed = false;
  stream.on("data", (chunk: Buffer) => {
    if (failed) return;
    size += chunk.length;
    chunks.push(chunk);
    if (!checked && size >= FRAME_HEADER) {
      // Refuse an oversized message from its declared length, before buffering it.
      checked = true;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const length = head.readUInt32BE(1);
      if (length > maxMessageBytes) {
        failed = true;
        chunks.length = 0;
        done(new ConnectError(`request message of ${length} bytes exceeds the limit of ${maxMessageBytes}`, Code.ResourceExhausted));
      }
    }
  });
  stream.once("end", () => {
    if (failed) return;
    const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (buf.length < FRAME_HEADER) return done(new ConnectError("request has no message", Code.InvalidArgument));
    const { message, error, next } = decodeEnvelope(schema, buf, 0, maxMessageBytes);
    if (error) return done(error);
    if (!message) return done(new ConnectError("request message is truncated", Code.InvalidArgument));
    if (next !== buf.length) return done(new ConnectError("unary request carries more than one message", Code.Unimplemented));
    done(undefined, message);
  });
}

async function* readMessages(stream: ServerHttp2Stream, schema: DescMessage, maxMessageBytes: number): AsyncGenerator<Message> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let offset = 0;
    while (buf.length - offset >= FRAME_HEADER) {
      const { message, error, next } = decodeEnvelope(schema, buf, offset, maxMessageBytes);
      if (error) throw error;
      if (!message) break;
      offset = next;
      yield message;
    }
    buf = buf.subarray(offset);
  }
  if (buf.length > 0) throw new ConnectError("request stream ended inside a message", Code.InvalidArgument);
}
