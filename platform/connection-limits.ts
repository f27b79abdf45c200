// The bounds every connection lives under, whatever the client sends: how
// long it may take to say which protocol it speaks, how long an HTTP/2
// session may sit with no stream, how often it may ping, how many streams it
// may hold and how large its headers may be. Each has a safe default and an
// environment variable (README "Limits").
import { constants as h2 } from "node:http2";
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import { createServer } from "node:http";
import type { RequestListener, Server as HttpServer } from "node:http";
import type { Socket } from "node:net";
import type { RefusalReporter } from "./telemetry/refusals.ts";

export interface ConnectionLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS per HTTP/2 connection. MAX_CONCURRENT_STREAMS, default 250. */
  maxConcurrentStreams: number;
  /** An HTTP/2 session with no open stream, or a kept-alive HTTP/1.1 connection, is closed after this. IDLE_TIMEOUT_MS, default 60000. */
  idleTimeoutMs: number;
  /** Time to send the connection preface and the first request's headers (HTTP/1.1 and HTTP/2). HEADERS_TIMEOUT_MS, default 10000. */
  headersTimeoutMs: number;
  /** A unary or server-streaming request with no deadline must arrive whole within this. REQUEST_BODY_TIMEOUT_MS, default 30000. */
  requestBodyTimeoutMs: number;
  /** Pings closer together than this earn a strike. KEEPALIVE_MIN_TIME_MS, default 5000. */
  keepaliveMinTimeMs: number;
  /** Strikes allowed before GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"). KEEPALIVE_MAX_PING_STRIKES, default 2. */
  maxPingStrikes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (HTTP/2) and the HTTP/1.1 header limit, in bytes. MAX_HEADER_LIST_BYTES, default 16384. */
  maxHeaderListBytes: number;
}

export function connectionLimitsFromEnv(overrides: Partial<ConnectionLimits> = {}, env: NodeJS.ProcessEnv = process.env): ConnectionLimits {
  const read = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${raw}: expected a whole number > 0`);
    return value;
  };
  return {
    maxConcurrentStreams: overrides.maxConcurrentStreams ?? read("MAX_CONCURRENT_STREAMS", 250),
    idleTimeoutMs: overrides.idleTimeoutMs ?? read("IDLE_TIMEOUT_MS", 60_000),
    headersTimeoutMs: overrides.headersTimeoutMs ?? read("HEADERS_TIMEOUT_MS", 10_000),
    requestBodyTimeoutMs: overrides.requestBodyTimeoutMs ?? read("REQUEST_BODY_TIMEOUT_MS", 30_000),
    keepaliveMinTimeMs: overrides.keepaliveMinTimeMs ?? read("KEEPALIVE_MIN_TIME_MS", 5_000),
    maxPingStrikes: overrides.maxPingStrikes ?? read("KEEPALIVE_MAX_PING_STRIKES", 2),
    maxHeaderListBytes: overrides.maxHeaderListBytes ?? read("MAX_HEADER_LIST_BYTES", 16_384),
  };
}

/** Options for http2.createServer that carry the limits into SETTINGS. */
export function http2Settings(limits: ConnectionLimits) {
  return {
    settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListBytes },
    maxHeaderListPairs: 128,
    // nghttp2 ends a session that keeps opening streams past the limit.
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
  };
}

/**
 * The HTTP/1.1 server, with the limits applied. It is fed connections by the
 * front socket server and never listens itself, so node's timer that checks
 * header and request timeouts (started on "listening") is started by hand.
 */
export function createHttp1Server(limits: ConnectionLimits, handler: RequestListener): HttpServer {
  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderListBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestBodyTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: Math.min(limits.idleTimeoutMs, 5_000),
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    handler,
  );
  server.maxHeadersCount = 128;
  server.emit("listening");
  return server;
}

/** The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it: name + value + 32 per field. */
export function headerListBytes(headers: IncomingHttpHeaders): number {
  let total = 0;
  for (const name in headers) {
    const value = headers[name];
    if (Array.isArray(value)) for (const v of value) total += name.length + v.length + 32;
    else if (value !== undefined) total += name.length + value.length + 32;
  }
  return total;
}

/**
 * node:http2 advertises SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it
 * on what it receives: a stream over it is answered 431 here, before any
 * handler sees it. True when refused.
 */
export function refuseOversizedHeaders(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, limits: ConnectionLimits, refusals: RefusalReporter): boolean {
  const size = headerListBytes(headers);
  if (size <= limits.maxHeaderListBytes) return false;
  stream.on("error", () => undefined);
  const session = stream.session;
  const peer = session?.socket ? `${session.socket.remoteAddress}:${session.socket.remotePort}` : "";
  refusals.report("limit", { limit: "header_list_size", peer, bytes: size }, `request headers of ${size} bytes exceed the limit of ${limits.maxHeaderListBytes}`);
  try {
    if (!stream.destroyed && !stream.closed) {
      stream.respond({ ":status": 431 }, { endStream: true });
      // After this turn's frames: a reset submitted now would overtake the answer.
      setImmediate(() => {
        if (!stream.destroyed && !stream.closed) stream.close(h2.NGHTTP2_NO_ERROR);
      });
    }
  } catch {
    // The stream is gone already.
  }
  return true;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Reads the first bytes of a connection and hands it to HTTP/2 when they are
 * the connection preface, else to HTTP/1.1, even when the preface arrives in
 * several small pieces. A connection that says nothing within
 * headersTimeoutMs is closed.
 */
export function sniffProtocol(
  socket: Socket,
  limits: ConnectionLimits,
  refusals: RefusalReporter,
  handTo: (protocol: "h2" | "http/1.1", socket: Socket) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const timer = setTimeout(() => {
    socket.off("data", onData);
    refusals.report("limit", { limit: "headers_timeout", peer, bytes: size }, `no protocol preface within ${limits.headersTimeoutMs} ms`);
    socket.destroy();
  }, limits.headersTimeoutMs);
  const decide = (protocol: "h2" | "http/1.1") => {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.pause();
    socket.unshift(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    handTo(protocol, socket);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    const start = size;
    size += chunk.length;
    const compare = Math.min(size, PREFACE.length) - start;
    if (compare > 0 && !chunk.subarray(0, compare).equals(PREFACE.subarray(start, start + compare))) return decide("http/1.1");
    if (size >= PREFACE.length) decide("h2");
  };
  socket.on("data", onData);
  socket.once("close", () => clearTimeout(timer));
}

/**
 * The per-session HTTP/2 bounds node:http2 does not keep itself: the first
 * stream within headersTimeoutMs, no stream for idleTimeoutMs closes the
 * session with GOAWAY, and a ping policy as gRPC servers have (pings closer
 * than keepaliveMinTimeMs earn strikes; past maxPingStrikes, GOAWAY
 * ENHANCE_YOUR_CALM "too_many_pings").
 */
export function guardSession(session: ServerHttp2Session, limits: ConnectionLimits, refusals: RefusalReporter): void {
  const socket = session.socket;
  const peer = socket ? `${socket.remoteAddress}:${socket.remotePort}` : "";
  let openStreams = 0;
  let everStream = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let lastPing = 0;
  let strikes = 0;
  const armIdle = () => {
    clearTimeout(idleTimer);
    const wait = everStream ? limits.idleTimeoutMs : Math.min(limits.headersTimeoutMs, limits.idleTimeoutMs);
    idleTimer = setTimeout(() => {
      if (openStreams > 0 || session.destroyed) return;
      if (!everStream) refusals.report("limit", { limit: "headers_timeout", peer }, `no complete request headers within ${wait} ms`);
      closeSession(session);
    }, wait);
    idleTimer.unref();
  };
  armIdle();
  session.on("error", () => undefined);
  session.on("stream", (stream) => {
    everStream = true;
    openStreams++;
    clearTimeout(idleTimer);
    stream.once("close", () => {
      openStreams--;
      if (openStreams === 0 && !session.destroyed) armIdle();
    });
  });
  let pings = 0;
  let sentBeyondAcks = 0;
  session.on("ping", () => {
    const now = performance.now();
    // Like grpc-go's server, a ping after the server sent something other
    // than ping ACKs (headers, data, trailers) starts the count afresh:
    // clients ping while receiving, to size their flow-control window
    // (grpc-go's BDP estimator), and that is no abuse. The bytes written
    // less 17 per ping answered so far only grow when something else went
    // out (ACKs not written yet only lower it), so its high-water mark tells.
    const beyondAcks = (socket?.bytesWritten ?? 0) - 17 * pings;
    pings++;
    if (beyondAcks > sentBeyondAcks) {
      sentBeyondAcks = beyondAcks;
      strikes = 0;
    } else if (lastPing !== 0 && now - lastPing < limits.keepaliveMinTimeMs) strikes++;
    lastPing = now;
    if (strikes > limits.maxPingStrikes && !session.destroyed) {
      refusals.report("limit", { limit: "too_many_pings", peer }, "too many pings: GOAWAY ENHANCE_YOUR_CALM");
      try {
        session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from("too_many_pings"));
      } catch {
        // Already going away.
      }
      closeSession(session);
    }
  });
  session.once("close", () => clearTimeout(idleTimer));
}

/** GOAWAY and a graceful close; whatever is left after a second is cut. */
function closeSession(session: ServerHttp2Session): void {
  if (session.destroyed) return;
  try {
    session.close();
  } catch {
    // Closing already.
  }
  setTimeout(() => {
    if (!session.destroyed) session.destroy();
  }, 1_000).unref();
}
