// The lean gRPC path: HTTP/2 streams with content-type application/grpc are
// framed here, straight on node:http2, and handed to the same wrapped
// implementations connect-node serves for Connect and gRPC-Web. It exists
// because the default connect-node server costs 3-4x on unary gRPC (see
// BENCHMARKS.md); everything above framing lives in rpc-pipeline.ts.
//
// What it guarantees, whatever the client does:
// - No write can throw into the process: every respond, write, end, trailer
//   and reset goes through `open()` (stream not closed or destroyed, session
//   still there) and a try/catch; a defect that still surfaces is logged with
//   a trace id and ends that stream only.
// - An error answers Trailers-Only (one HEADERS frame with END_STREAM carrying
//   grpc-status, which Envoy's retry_on and outlier detection read) unless the
//   handler set response headers or sent a message; then headers, then
//   trailers. Trailers the handler set travel with the status either way.
// - Once the status is out, a request side still open is closed with
//   RST_STREAM(NO_ERROR), as gRPC servers do; the handler never makes the
//   stream reset with CANCEL by leaving its request stream unread.
// - A unary or server-streaming request must arrive whole within the call's
//   deadline, or within requestBodyTimeoutMs when it has none.
// - Every refusal before the handler (framing, decoding, size, compression,
//   content type, unknown method, limits) is counted and logged (rate-limited).
import { gunzipSync, gzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { constants as h2 } from "node:http2";
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { create, fromBinary, fromJsonString, isMessage, toBinary, toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, Message, Registry } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { contractOf } from "./contract.ts";
import { peerKey, rawHeadersKey } from "./rpc-pipeline.ts";
import type { RefusalReason } from "./telemetry/metrics.ts";
import { clip } from "./telemetry/refusals.ts";
import type { RefusalReporter } from "./telemetry/refusals.ts";

export interface GrpcRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: (input: unknown, ctx: HandlerContext) => unknown;
}

export interface GrpcPathOptions {
  lookup(path: string): GrpcRoute | undefined;
  /** Largest request message accepted, in bytes, after decompression. Larger ones answer RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** How long a unary or server-streaming request may take to arrive when the call has no deadline. */
  requestBodyTimeoutMs: number;
  /** Resolves google.protobuf.Any (and extensions) for application/grpc+json. */
  jsonRegistry?: Registry;
  refusals: RefusalReporter;
  /** A defect of the transport itself (never a client's doing): logged, and only that stream ends. */
  onDefect(err: unknown, fields: { path: string; trace_id: string }): void;
}

const FRAME_HEADER = 5;
/** grpc-message is client-visible and may echo client input: bounded. */
const MAX_STATUS_MESSAGE = 1024;
/** Responses smaller than this go uncompressed even when the client accepts gzip. */
const COMPRESS_MIN_BYTES = 1024;
const ACCEPT_ENCODING = "gzip,identity";

interface Codec {
  readonly contentType: string;
  parse(schema: DescMessage, bytes: Uint8Array): Message;
  serialize(schema: DescMessage, message: Message): Uint8Array;
}

const protoCodec = (contentType: string): Codec => ({
  contentType,
  parse: (schema, bytes) => fromBinary(schema, bytes),
  serialize: (schema, message) => toBinary(schema, message),
});

function jsonCodec(registry: Registry | undefined): Codec {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const encoder = new TextEncoder();
  return {
    contentType: "application/grpc+json",
    parse: (schema, bytes) => fromJsonString(schema, decoder.decode(bytes), { registry }),
    serialize: (schema, message) => encoder.encode(toJsonString(schema, message, { registry })),
  };
}

export function isGrpcRequest(headers: IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  // application/grpc, application/grpc+proto, application/grpc+json; never application/grpc-web.
  return type !== undefined && type.startsWith("application/grpc") && !type.startsWith("application/grpc-web");
}

/** The stream can still be written: not closed or destroyed, its session still there. */
function open(stream: ServerHttp2Stream): boolean {
  const session = stream.session;
  return !stream.destroyed && !stream.closed && session !== undefined && !session.destroyed;
}

export function createGrpcStreamHandler(options: GrpcPathOptions) {
  const { maxMessageBytes } = options;
  const codecs = new Map<string, Codec>([
    ["application/grpc", protoCodec("application/grpc")],
    ["application/grpc+proto", protoCodec("application/grpc+proto")],
    ["application/grpc+json", jsonCodec(options.jsonRegistry)],
  ]);

  const refuse = (stream: ServerHttp2Stream, path: string, reason: RefusalReason, error: ConnectError, extra?: OutgoingHttpHeaders) => {
    options.refusals.report(reason, { path: clip(path), peer: peerOf(stream), code: Code[error.code] }, clip(error.rawMessage));
    sendError(stream, error, undefined, undefined, extra);
  };

  return function handleGrpcStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const path = headers[":path"] ?? "";
    // A client that resets or drops the stream must never surface as an
    // uncaught error; the call learns of it through its signal.
    stream.on("error", noop);
    try {
      serve(stream, headers, path);
    } catch (err) {
      defect(stream, headers, path, err);
    }
  };

  function defect(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, path: string, err: unknown): void {
    const trace_id = traceIdOf(headers);
    options.onDefect(err, { path: clip(path), trace_id });
    if (!sendError(stream, new ConnectError(`internal error (trace ${trace_id})`, Code.Internal)) && open(stream)) {
      try {
        stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      } catch {
        // The stream is gone already.
      }
    }
  }

  function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, path: string): void {
    if (headers[":method"] !== "POST") {
      options.refusals.report("protocol", { path: clip(path), peer: peerOf(stream), method: clip(String(headers[":method"])) }, "gRPC requires POST");
      respondHttp(stream, 405, { allow: "POST" });
      return;
    }
    const rawType = headers["content-type"] ?? "";
    // The common spellings match as they are; anything else is normalised first.
    const type = codecs.has(rawType) ? rawType : rawType.split(";")[0].trim().toLowerCase();
    const codec = codecs.get(type);
    if (!codec) {
      options.refusals.report("content_type", { path: clip(path), peer: peerOf(stream) }, `unsupported content-type ${clip(type)}`);
      respondHttp(stream, 415, { "grpc-status": String(Code.Internal), "grpc-message": encodeURIComponent(`unsupported content-type ${clip(type, 80)}`) });
      return;
    }
    const route = options.lookup(path);
    if (!route) {
      refuse(stream, path, "unknown_method", new ConnectError(`unknown method ${clip(path)}`, Code.Unimplemented));
      return;
    }
    const encoding = asString(headers["grpc-encoding"]) ?? "identity";
    if (encoding !== "identity" && encoding !== "gzip") {
      refuse(stream, path, "compression", new ConnectError(`unknown compression "${clip(encoding, 40)}": supported encodings are ${ACCEPT_ENCODING}`, Code.Unimplemented));
      return;
    }
    const kind = route.method.methodKind;
    const timeout = parseTimeout(asString(headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    if (timeout.error) {
      refuse(stream, path, "protocol", new ConnectError(clip(timeout.error.rawMessage), timeout.error.code));
      return;
    }
    const responseGzip = accepts(asString(headers["grpc-accept-encoding"]), "gzip");
    const call = createCallContext(stream, route, path, timeout.timeoutMs, headers, peerOf(stream));
    const wire: Wire = { stream, streamingRequest: kind === "client_streaming" || kind === "bidi_streaming", codec, responseGzip, gunzip: encoding === "gzip", maxMessageBytes };
    const fail = (err: unknown) => defect(stream, headers, path, err);
    if (kind === "unary" || kind === "server_streaming") {
      // The body must arrive within the deadline the call will run under.
      const deadlineMs = timeout.timeoutMs ?? contractOf(route.method).deadlineMs ?? options.requestBodyTimeoutMs;
      readSingleMessage(wire, route.method.input, deadlineMs, (err, reason, message) => {
        if (err) {
          if (reason) options.refusals.report(reason, { path: clip(path), peer: call.peer, code: Code[err.code] }, clip(err.rawMessage));
          sendError(stream, err);
          return;
        }
        const run = kind === "unary" ? runUnary(wire, route, message!, call) : runServerStream(wire, route, message!, call);
        run.catch(fail);
      });
      return;
    }
    const requests = readMessages(wire, route.method.input, (reason, err) => {
      options.refusals.report(reason, { path: clip(path), peer: call.peer, code: Code[err.code] }, clip(err.rawMessage));
    });
    const run = kind === "client_streaming" ? runUnary(wire, route, requests, call) : runServerStream(wire, route, requests, call);
    run.catch(fail);
  }
}

function noop(): void {}

/** setTimeout fires at once for delays past 2^31-1 ms: clamp (about 24 days is "never" here). */
function timerDelay(ms: number): number {
  return Math.min(Math.max(0, ms), 2 ** 31 - 1);
}

/** What the framing of one stream needs: its codec and its compression. */
interface Wire {
  readonly stream: ServerHttp2Stream;
  /** The request side may still be open when the answer goes out (client-streaming, bidi). */
  readonly streamingRequest: boolean;
  readonly codec: Codec;
  /** The client accepts gzip responses. */
  readonly responseGzip: boolean;
  /** The request's messages may be gzip-compressed (grpc-encoding: gzip). */
  readonly gunzip: boolean;
  readonly maxMessageBytes: number;
}

interface CallContext {
  readonly ctx: HandlerContext;
  readonly peer: string;
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
  // stream; node:http2 reports that as an error on the stream. The handler
  // learns of it through its signal.
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
        }, timerDelay(deadlineAt - Date.now()));
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
    peer,
    header: () => responseHeader,
    trailer: () => responseTrailer,
    finish() {
      finished = true;
      clearTimeout(timer);
    },
  };
}

async function runUnary(wire: Wire, route: GrpcRoute, input: unknown, call: CallContext): Promise<void> {
  const { stream } = wire;
  let body: Buffer;
  try {
    const output = toMessage(route.method.output, await route.impl(input, call.ctx));
    body = encodeMessage(wire, route.method.output, output);
  } catch (err) {
    call.finish();
    sendError(stream, asConnectError(err), call.header(), call.trailer(), undefined, wire.codec.contentType);
    return;
  }
  call.finish();
  if (!open(stream)) return;
  stream.respond(responseHeaders(call.header(), wire), { waitForTrailers: true });
  stream.once("wantTrailers", () => sendTrailers(stream, okTrailers(call.trailer()), wire.streamingRequest));
  stream.end(body);
}

async function runServerStream(wire: Wire, route: GrpcRoute, input: unknown, call: CallContext): Promise<void> {
  const { stream } = wire;
  let headersSent = false;
  let failure: ConnectError | undefined;
  try {
    for await (const item of route.impl(input, call.ctx) as AsyncIterable<unknown>) {
      if (!open(stream)) return;
      const bytes = encodeMessage(wire, route.method.output, toMessage(route.method.output, item));
      if (!headersSent) {
        stream.respond(responseHeaders(call.header(), wire), { waitForTrailers: true });
        headersSent = true;
      }
      if (!stream.write(bytes)) await waitForDrain(stream);
    }
  } catch (err) {
    failure = asConnectError(err);
  } finally {
    call.finish();
  }
  if (!open(stream)) return;
  const header = call.header();
  if (!headersSent && (header === undefined || isEmpty(header))) {
    // Nothing sent and no headers set: a clean end or an error both go out as Trailers-Only.
    sendError(stream, failure, undefined, call.trailer(), undefined, wire.codec.contentType);
    return;
  }
  if (!headersSent) stream.respond(responseHeaders(header, wire), { waitForTrailers: true });
  stream.once("wantTrailers", () => sendTrailers(stream, failure ? statusTrailers(failure, call.trailer()) : okTrailers(call.trailer()), wire.streamingRequest));
  stream.end();
}

function okTrailers(trailer: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = trailer ? toOutgoing(trailer) : {};
  out["grpc-status"] = "0";
  return out;
}

function statusTrailers(error: ConnectError, trailer: Headers | undefined): OutgoingHttpHeaders {
  return toOutgoing(setTrailerStatus(new Headers(trailer), bounded(error)));
}

/** Trailers, then the unread request side (if it may be open) closed with NO_ERROR. */
function sendTrailers(stream: ServerHttp2Stream, trailers: OutgoingHttpHeaders, requestMayBeOpen = true): void {
  if (!open(stream)) return;
  try {
    stream.sendTrailers(trailers);
  } catch {
    return;
  }
  if (requestMayBeOpen) closeUnread(stream);
}

/**
 * The error as a status. Trailers-Only when the handler set no response
 * headers; otherwise the headers it set, then the status in trailers (a
 * handler's headers never fold into a Trailers-Only block). False when the
 * stream could not take it (gone, or headers already out).
 */
function sendError(
  stream: ServerHttp2Stream,
  error: ConnectError | undefined,
  header?: Headers,
  trailer?: Headers,
  extra?: OutgoingHttpHeaders,
  contentType = "application/grpc",
): boolean {
  if (!open(stream) || stream.headersSent) return false;
  try {
    const status = error ? statusTrailers(error, trailer) : okTrailers(trailer);
    if (header !== undefined && !isEmpty(header)) {
      const out: OutgoingHttpHeaders = { ":status": 200, "content-type": contentType, "grpc-accept-encoding": ACCEPT_ENCODING };
      for (const [k, v] of header) out[k] = v;
      stream.respond(out, { waitForTrailers: true });
      stream.once("wantTrailers", () => sendTrailers(stream, status));
      stream.end();
      return true;
    }
    const out: OutgoingHttpHeaders = { ":status": 200, "content-type": contentType, "grpc-accept-encoding": ACCEPT_ENCODING, ...extra, ...status };
    stream.respond(out, { endStream: true });
  } catch {
    // A status that cannot be written as it is (never expected: the message
    // is bounded and well-formed) still ends the call, not a hung stream.
    if (!open(stream)) return false;
    try {
      if (!stream.headersSent) stream.respond({ ":status": 200, "content-type": contentType, "grpc-status": String(Code.Internal), "grpc-message": "internal%20error" }, { endStream: true });
      else stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    } catch {
      return false;
    }
  }
  closeUnread(stream);
  return true;
}

/** A plain HTTP answer (405, 415) for a request that is not gRPC enough to get a status. */
function respondHttp(stream: ServerHttp2Stream, status: number, headers: OutgoingHttpHeaders): void {
  if (!open(stream) || stream.headersSent) return;
  try {
    stream.respond({ ":status": status, ...headers }, { endStream: true });
  } catch {
    return;
  }
  closeUnread(stream);
}

/**
 * After the answer is out, a request side the client has not finished is
 * closed with RST_STREAM(NO_ERROR): the client keeps the status it already
 * has, and the stream stops holding a slot.
 */
function closeUnread(stream: ServerHttp2Stream): void {
  // nghttp2 sends a submitted RST_STREAM ahead of trailers submitted in the
  // same tick (the status would be lost): reset once this turn's frames are out.
  if (remoteClosed(stream)) return;
  setImmediate(() => {
    if (!open(stream) || remoteClosed(stream)) return;
    try {
      stream.close(h2.NGHTTP2_NO_ERROR);
    } catch {
      // The stream went away on its own.
    }
  });
}

function remoteClosed(stream: ServerHttp2Stream): boolean {
  return (stream.state as { remoteClose?: number } | undefined)?.remoteClose === 1;
}

/** The status message bounded in length and well-formed (a lone surrogate cannot be percent-encoded). */
function bounded(error: ConnectError): ConnectError {
  if (error.rawMessage.length <= MAX_STATUS_MESSAGE && error.rawMessage.isWellFormed()) return error;
  const out = new ConnectError(clip(error.rawMessage.toWellFormed(), MAX_STATUS_MESSAGE), error.code);
  out.details.push(...error.details);
  return out;
}

function isEmpty(headers: Headers): boolean {
  for (const _ of headers.keys()) return false;
  return true;
}

function responseHeaders(header: Headers | undefined, wire: Wire): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ":status": 200, "content-type": wire.codec.contentType, "grpc-accept-encoding": ACCEPT_ENCODING };
  if (wire.responseGzip) out["grpc-encoding"] = "gzip";
  if (header) for (const [k, v] of header) out[k] = v;
  return out;
}

function accepts(list: string | null, encoding: string): boolean {
  if (list === null || !list.includes(encoding)) return false;
  if (list === encoding) return true;
  for (const item of list.split(",")) if (item.trim() === encoding) return true;
  return false;
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
    peer = socket ? `${socket.remoteAddress}:${socket.remotePort}` : "";
    peers.set(session, peer);
  }
  return peer;
}

function traceIdOf(headers: IncomingHttpHeaders): string {
  const parent = asString(headers.traceparent);
  const match = parent === null ? null : /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(parent);
  return match ? match[1] : randomBytes(16).toString("hex");
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

/** One response message, enveloped; gzip when the client accepts it and the message is large enough to gain. */
function encodeMessage(wire: Wire, schema: DescMessage, message: Message): Buffer {
  let body = wire.codec.serialize(schema, message);
  let flags = 0;
  if (wire.responseGzip && body.length >= COMPRESS_MIN_BYTES) {
    body = gzipSync(body);
    flags = 1;
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out[0] = flags;
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

class Refusal extends ConnectError {
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, message: string, code: Code) {
    super(message, code);
    this.reason = reason;
  }
}

/** Chunks in, whole envelopes out; refuses an oversized message from its declared length, before buffering it. */
class Deframer {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly maxMessageBytes: number;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  get buffered(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The declared length of the next envelope once its header is in (throws when over the limit). */
  declared(): number | undefined {
    if (this.size < FRAME_HEADER) return undefined;
    if (this.chunks[0].length < FRAME_HEADER) this.chunks = [Buffer.concat(this.chunks)];
    const length = this.chunks[0].readUInt32BE(1);
    if (length > this.maxMessageBytes) {
      throw new Refusal("size", `request message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`, Code.ResourceExhausted);
    }
    return length;
  }

  /** The next whole envelope, or undefined until one has arrived. */
  next(): { flags: number; data: Buffer } | undefined {
    const length = this.declared();
    if (length === undefined) return undefined;
    const head = this.chunks[0];
    const total = FRAME_HEADER + length;
    if (this.size < total) return undefined;
    let data: Buffer;
    let flags: number;
    if (head.length >= total) {
      // The first chunk holds the whole envelope: later chunks stay queued behind what is left of it.
      flags = head[0];
      data = head.subarray(FRAME_HEADER, total);
      const rest = head.subarray(total);
      this.chunks = rest.length > 0 ? [rest, ...this.chunks.slice(1)] : this.chunks.slice(1);
    } else {
      const all = Buffer.concat(this.chunks);
      flags = all[0];
      data = all.subarray(FRAME_HEADER, total);
      const rest = all.subarray(total);
      this.chunks = rest.length > 0 ? [rest] : [];
    }
    this.size -= total;
    return { flags, data };
  }
}

/** Decompresses (bounded) and decodes one envelope's payload. */
function decodeMessage(wire: Wire, schema: DescMessage, flags: number, data: Buffer): Message {
  let bytes: Buffer = data;
  if (flags & 1) {
    if (!wire.gunzip) {
      throw new Refusal("compression", "protocol error: received a compressed message without grpc-encoding", Code.Internal);
    }
    try {
      bytes = gunzipSync(data, { maxOutputLength: wire.maxMessageBytes });
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
        throw new Refusal("size", `decompressed request message exceeds the limit of ${wire.maxMessageBytes} bytes`, Code.ResourceExhausted);
      }
      throw new Refusal("compression", "request message is not valid gzip", Code.InvalidArgument);
    }
  }
  try {
    return wire.codec.parse(schema, bytes);
  } catch {
    throw new Refusal("decoding", `malformed request message: cannot decode ${schema.typeName}`, Code.InvalidArgument);
  }
}

/**
 * The deadlines of requests still arriving, swept a few times a second by one
 * timer instead of a timer per call (a call's body nearly always arrives in
 * the same turn as its headers; a timer each would be the hot path's cost).
 */
const bodyDeadlines = (() => {
  const SWEEP_MS = 100;
  const pending = new Set<{ at: number; fire: () => void }>();
  let sweeper: NodeJS.Timeout | undefined;
  const sweep = () => {
    const now = Date.now();
    for (const entry of pending) {
      if (entry.at <= now) {
        pending.delete(entry);
        entry.fire();
      }
    }
    if (pending.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  return {
    add(at: number, fire: () => void) {
      const entry = { at, fire };
      pending.add(entry);
      if (!sweeper) {
        sweeper = setInterval(sweep, SWEEP_MS);
        sweeper.unref();
      }
      return entry;
    },
    remove(entry: { at: number; fire: () => void }) {
      pending.delete(entry);
    },
  };
})();

function readSingleMessage(
  wire: Wire,
  schema: DescMessage,
  withinMs: number,
  done: (err: ConnectError | undefined, reason?: RefusalReason, message?: Message) => void,
): void {
  const { stream } = wire;
  const deframer = new Deframer(wire.maxMessageBytes);
  let settled = false;
  const settle = (err: ConnectError | undefined, reason?: RefusalReason, message?: Message) => {
    if (settled) return;
    settled = true;
    bodyDeadlines.remove(timer);
    stream.off("data", onData);
    if (err) stream.resume();
    done(err, reason, message);
  };
  const timer = bodyDeadlines.add(Date.now() + withinMs, () =>
    settle(new ConnectError(`the request did not arrive whole within ${Math.round(withinMs)} ms`, Code.DeadlineExceeded), "limit"),
  );
  const onData = (chunk: Buffer) => {
    deframer.push(chunk);
    try {
      // Checks the declared length as soon as the envelope header is in.
      deframer.declared();
    } catch (err) {
      const refusal = err as Refusal;
      settle(refusal, refusal.reason);
    }
  };
  stream.on("data", onData);
  // The client went away first: nothing to answer, nothing refused.
  stream.once("close", () => settle(new ConnectError("stream closed before the request arrived", Code.Canceled)));
  // node:http2 ends the readable side of a stream the client reset before it
  // marks it aborted: a framing refusal waits one turn, and is no refusal if
  // the client reset the stream (nothing to answer then).
  const refuseFraming = (err: ConnectError) =>
    setImmediate(() => {
      if (stream.aborted || !open(stream)) settle(new ConnectError("stream reset by the client", Code.Canceled));
      else settle(err, "framing");
    });
  stream.once("end", () => {
    if (settled) return;
    try {
      const envelope = deframer.next();
      if (!envelope) {
        if (deframer.buffered === 0) return refuseFraming(new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
        return refuseFraming(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      }
      if (deframer.buffered > 0) return refuseFraming(new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented));
      settle(undefined, undefined, decodeMessage(wire, schema, envelope.flags, envelope.data));
    } catch (err) {
      const refusal = err as Refusal;
      settle(refusal, refusal.reason);
    }
  });
}

/**
 * The request messages of a client-streaming or bidi call. Leaving the loop
 * early does not destroy the stream (that would reset it with CANCEL and
 * lose the status): the transport closes the unread side once the status is out.
 */
async function* readMessages(wire: Wire, schema: DescMessage, refused: (reason: RefusalReason, err: ConnectError) => void): AsyncGenerator<Message> {
  const deframer = new Deframer(wire.maxMessageBytes);
  try {
    for await (const chunk of wire.stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      deframer.push(chunk);
      for (let envelope = deframer.next(); envelope; envelope = deframer.next()) {
        yield decodeMessage(wire, schema, envelope.flags, envelope.data);
      }
    }
    // A reset ends the readable side as a clean end would, and is marked a
    // turn later: a stream the client reset is never a complete request.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (wire.stream.aborted || !open(wire.stream)) throw new ConnectError("request stream reset by the client", Code.Canceled);
    if (deframer.buffered > 0) throw new Refusal("framing", "protocol error: incomplete envelope", Code.InvalidArgument);
  } catch (err) {
    if (err instanceof Refusal) refused(err.reason, err);
    if (err instanceof ConnectError) throw err;
    // The stream failed under the reader: the client reset it or went away.
    throw new ConnectError("request stream reset by the client", Code.Canceled);
  }
}
