// A soak run, not a test: the shop as `make run` starts it (runner/embedded.ts
// in its own process, SQLite files in a temporary folder) on a free loopback
// port, for SOAK_MINUTES of valid traffic through the public API mixed with
// hostile traffic at the transport (abandoned streams, silent sockets,
// slowloris, oversized headers, malformed frames, garbage after the preface,
// ping floods, rapid resets, broken gRPC envelopes). Every hostile action is
// bounded in count and time; everything stays on 127.0.0.1.
//
// It samples the child's RSS (VmRSS in /proc/<pid>/status), and at the end
// prints the RSS at the baseline minute and at the end, their ratio, valid
// calls by code, hostile actions by kind and outcome, the transport's
// refusals, and whether the process crashed. Exits 1 when the end RSS is
// more than 10% over the baseline, or the process died.
//
//   make soak                        20 minutes, baseline at minute 5
//   SOAK_MINUTES=2 make soak         a quick try, baseline at minute 1 (under 10 minutes: minute 1)
//   SOAK_RATE=75                     valid calls per second (default 75)
//   SOAK_HOSTILE_RATE=10             hostile actions started per second (default 10)
//   SOAK_BASELINE_MINUTE=<m>         compare the end to minute m instead
//   SOAK_SEED=<n>                    the seed of the hostile payloads (printed)
//   SOAK_MAX_GROWTH=0.10             the allowed growth of RSS from the baseline to the end
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CatalogService } from "../gen/shop/catalog/v1/catalog_pb.js";
import { Health, HealthCheckRequestSchema } from "../gen/health/v1/health_pb.js";
import { NotificationService } from "../gen/shop/notifications/v1/notifications_pb.js";
import { OrderService } from "../gen/shop/orders/v1/orders_pb.js";
import { StorefrontService } from "../gen/shop/storefront/v1/storefront_pb.js";
import { UserService } from "../gen/shop/users/v1/users_pb.js";
import { envelope, generateMessage, MUTATIONS, mutate, Rng } from "../test/hostile/fuzz-messages.ts";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

function numberEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: expected a number > 0`);
  return value;
}

const MINUTES = numberEnv("SOAK_MINUTES", 20);
const RATE = numberEnv("SOAK_RATE", 75);
const HOSTILE_RATE = numberEnv("SOAK_HOSTILE_RATE", 10);
const BASELINE_MINUTE = numberEnv("SOAK_BASELINE_MINUTE", MINUTES >= 10 ? 5 : 1);
const MAX_GROWTH = numberEnv("SOAK_MAX_GROWTH", 0.1);
const SEED = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) >>> 0 : randomBytes(4).readUInt32BE(0);
const DURATION_MS = MINUTES * 60_000;
/** Valid calls in flight at most; beyond it a due call is skipped and counted. */
const MAX_VALID_IN_FLIGHT = 64;
/** Hostile actions in progress at most (silent sockets and slowloris hold theirs for seconds). */
const MAX_HOSTILE_IN_FLIGHT = 48;
const SAMPLE_EVERY_MS = 10_000;
const REPORT_EVERY_MS = 30_000;
const CUSTOMERS = 20;
if (BASELINE_MINUTE >= MINUTES) throw new Error(`SOAK_BASELINE_MINUTE=${BASELINE_MINUTE} must come before the end (SOAK_MINUTES=${MINUTES})`);

const rng = new Rng(SEED);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const elapsed = () => Date.now() - started;
const minutesNow = () => (elapsed() / 60_000).toFixed(1);
const log = (text: string) => process.stdout.write(`[soak ${minutesNow().padStart(5)} min] ${text}\n`);
const inc = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);

// ---------------------------------------------------------------- the shop

const dataDir = mkdtempSync(join(tmpdir(), "shop-soak-"));
const childEnv: NodeJS.ProcessEnv = {
  ...process.env,
  PORT: "0",
  HOST: "127.0.0.1",
  DATA_DIR: dataDir,
  SHOP_DEV_KEYS: "1",
  LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
};
// The embedded shape on SQLite and in-process events, whatever this shell exports.
for (const name of ["STORE", "BUS", "SHOP_REMOTE_ADDRESS", "OTEL_EXPORTER_OTLP_ENDPOINT"]) delete childEnv[name];

const child = spawn(process.execPath, ["runner/embedded.ts"], { cwd: repoRoot, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
let stopping = false;
let exitInfo: { code: number | null; signal: NodeJS.Signals | null; atMs: number } | undefined;
const exited = new Promise<void>((resolve) =>
  child.once("exit", (code, signal) => {
    exitInfo = { code, signal, atMs: elapsed() };
    resolve();
  }),
);
const logLevels = new Map<string, number>();
const errorLines: string[] = [];
const errorMessages = new Map<string, number>();
const stderrTail: string[] = [];
let portResolve: (port: number) => void;
const portKnown = new Promise<number>((resolve) => (portResolve = resolve));
createInterface({ input: child.stdout! }).on("line", (text) => {
  let line: { level?: string; msg?: string; port?: number; err?: { message?: string; stack?: string }; [k: string]: unknown };
  try {
    line = JSON.parse(text);
  } catch {
    return;
  }
  inc(logLevels, String(line.level));
  if (line.msg === "listening" && typeof line.port === "number") portResolve(line.port);
  if (line.level === "error" || line.level === "fatal") {
    inc(errorMessages, String(line.msg));
    if (errorLines.length < 20) errorLines.push(`${line.msg}: ${line.err?.stack?.split("\n").slice(0, 3).join(" | ") ?? line.err?.message ?? text.slice(0, 400)}`);
  }
});
createInterface({ input: child.stderr! }).on("line", (text) => {
  stderrTail.push(text);
  if (stderrTail.length > 40) stderrTail.shift();
});

const port = await Promise.race([
  portKnown,
  exited.then(() => {
    throw new Error(`the shop exited before listening: ${stderrTail.join("\n")}`);
  }),
  sleep(30_000).then(() => {
    throw new Error("the shop did not log 'listening' within 30 s");
  }),
]);
const url = `http://127.0.0.1:${port}`;
log(`shop pid ${child.pid} on ${url}, data in ${dataDir}; ${MINUTES} min, ${RATE} valid calls/s, ${HOSTILE_RATE} hostile actions/s, baseline minute ${BASELINE_MINUTE}, seed ${SEED} (SOAK_SEED=${SEED})`);

// ---------------------------------------------------------------- RSS and metrics

function rssKb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const samples: Array<{ atMs: number; rssKb: number }> = [];
function sample(): number | undefined {
  const kb = rssKb(child.pid!);
  if (kb !== undefined) samples.push({ atMs: elapsed(), rssKb: kb });
  return kb;
}

function metricsText(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/metrics`, { timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve(body));
      res.on("error", () => resolve(undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

function metricValue(text: string | undefined, name: string): number | undefined {
  if (!text) return undefined;
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

function refusals(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of (text ?? "").matchAll(/^rpc_server_refused_total\{([^}]*)\} ([0-9.e+-]+)$/gm)) out.set(m[1].replace(/"/g, ""), Number(m[2]));
  return out;
}

const mb = (kb: number | undefined) => (kb === undefined ? "?" : `${(kb / 1024).toFixed(1)} MB`);

// ---------------------------------------------------------------- valid traffic

const transport = createGrpcTransport({ baseUrl: url });
const users = createClient(UserService, transport);
const catalog = createClient(CatalogService, transport);
const orders = createClient(OrderService, transport);
const notifications = createClient(NotificationService, transport);
const storefront = createClient(StorefrontService, transport);
const health = createClient(Health, transport);

interface Customer {
  email: string;
  password: string;
  token: string;
  orderIds: string[];
}
const customers: Customer[] = [];
const PASSWORD = "soak-password-123";
for (let i = 0; i < CUSTOMERS; i++) {
  const email = `soak-${i}-${randomUUID().slice(0, 8)}@example.com`;
  await users.signUp({ email, password: PASSWORD, displayName: `Soak ${i}` }, { timeoutMs: 10_000 });
  const { token } = await users.login({ email, password: PASSWORD }, { timeoutMs: 10_000 });
  customers.push({ email, password: PASSWORD, token, orderIds: [] });
}
const skus = (await catalog.listProducts({ pageSize: 100 })).products.map((p) => p.sku);
log(`${customers.length} customers signed up, ${skus.length} products`);

const validByCall = new Map<string, { ok: number; failed: Map<string, number> }>();
const validCodes = new Map<string, number>();
let validInFlight = 0;
let validSkipped = 0;
const latencies: number[] = [];

const auth = (c: Customer) => ({ headers: { authorization: `Bearer ${c.token}` }, timeoutMs: 10_000 });
const calls: Array<{ name: string; weight: number; run: () => Promise<unknown> }> = [
  { name: "ListProducts", weight: 25, run: () => catalog.listProducts({ pageSize: rng.range(1, 50) }, { timeoutMs: 10_000 }) },
  { name: "GetProduct", weight: 8, run: () => catalog.getProduct({ sku: rng.pick(skus) }, { timeoutMs: 10_000 }) },
  { name: "SearchProducts", weight: 5, run: () => catalog.searchProducts({ query: rng.pick(["coffee", "mug", "grinder", "tea", "beans"]), pageSize: 10 }, { timeoutMs: 10_000 }) },
  {
    name: "Login",
    weight: 8,
    run: async () => {
      const c = rng.pick(customers);
      c.token = (await users.login({ email: c.email, password: c.password }, { timeoutMs: 10_000 })).token;
    },
  },
  {
    name: "SignUp",
    weight: 2,
    run: async () => {
      const email = `soak-new-${randomUUID().slice(0, 12)}@example.com`;
      await users.signUp({ email, password: PASSWORD, displayName: "Soak newcomer" }, { timeoutMs: 10_000 });
      const { token } = await users.login({ email, password: PASSWORD }, { timeoutMs: 10_000 });
      // Newcomers replace someone, so the set of customers stays bounded.
      customers[rng.int(customers.length)] = { email, password: PASSWORD, token, orderIds: [] };
    },
  },
  {
    name: "CreateOrder",
    weight: 14,
    run: async () => {
      const c = rng.pick(customers);
      const picked = rng.shuffle(skus).slice(0, rng.range(1, 3));
      const { order } = await orders.createOrder(
        { idempotencyKey: randomUUID(), items: picked.map((sku) => ({ sku, quantity: rng.range(1, 2) })), paymentMethod: rng.chance(0.9) ? "pm_card_ok" : "pm_card_declined" },
        auth(c),
      );
      c.orderIds.push(order!.orderId);
      if (c.orderIds.length > 20) c.orderIds.shift();
    },
  },
  {
    name: "GetOrder",
    weight: 8,
    run: async () => {
      const c = rng.pick(customers);
      if (c.orderIds.length === 0) return orders.listOrders({ pageSize: 5 }, auth(c));
      return orders.getOrder({ orderId: rng.pick(c.orderIds) }, auth(c));
    },
  },
  { name: "ListOrders", weight: 6, run: () => orders.listOrders({ pageSize: 10 }, auth(rng.pick(customers))) },
  {
    name: "WatchOrder",
    weight: 2,
    run: async () => {
      const c = rng.pick(customers);
      if (c.orderIds.length === 0) return;
      let n = 0;
      for await (const _ of orders.watchOrder({ orderId: rng.pick(c.orderIds) }, { ...auth(c), timeoutMs: 5_000 })) if (++n >= 10) break;
    },
  },
  { name: "GetProfile", weight: 5, run: () => users.getProfile({}, auth(rng.pick(customers))) },
  { name: "GetProfilePage", weight: 5, run: () => storefront.getProfilePage({}, auth(rng.pick(customers))) },
  { name: "GetProductPage", weight: 4, run: () => storefront.getProductPage({ sku: rng.pick(skus) }, { timeoutMs: 10_000 }) },
  { name: "ListNotifications", weight: 4, run: () => notifications.listNotifications({ pageSize: 10 }, auth(rng.pick(customers))) },
  { name: "HealthCheck", weight: 4, run: () => health.check({ service: "" }, { timeoutMs: 10_000 }) },
];
const callWeights = calls.reduce((s, c) => s + c.weight, 0);

function pickWeighted<T extends { weight: number }>(items: readonly T[], total: number): T {
  let roll = rng.next() * total;
  for (const item of items) {
    roll -= item.weight;
    if (roll < 0) return item;
  }
  return items[items.length - 1];
}

function validCall(): void {
  if (validInFlight >= MAX_VALID_IN_FLIGHT) {
    validSkipped++;
    return;
  }
  const call = pickWeighted(calls, callWeights);
  let stats = validByCall.get(call.name);
  if (!stats) validByCall.set(call.name, (stats = { ok: 0, failed: new Map() }));
  const t0 = performance.now();
  validInFlight++;
  call.run().then(
    () => {
      stats.ok++;
      inc(validCodes, "OK");
      latencies.push(performance.now() - t0);
    },
    (err: unknown) => {
      const code = err instanceof ConnectError ? Code[err.code] : `client error: ${(err as Error).message?.slice(0, 60)}`;
      inc(stats.failed, code);
      inc(validCodes, code);
    },
  ).finally(() => validInFlight--);
}

// ---------------------------------------------------------------- hostile traffic

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const hostileByKind = new Map<string, Map<string, number>>();
let hostileInFlight = 0;
let hostileSkipped = 0;
/** Everything a hostile action opened, destroyed at the end whatever its state. */
const open = new Set<{ destroy(): void }>();
/** Set when the run ends: whatever is still open then is cut by us, not by the shop. */
let tearingDown = false;

function track<T extends { destroy(): void; once(event: "close", cb: () => void): unknown }>(thing: T): T {
  open.add(thing);
  thing.once("close", () => open.delete(thing));
  return thing;
}

function rawSocket(): net.Socket {
  const socket = track(net.connect({ host: "127.0.0.1", port }));
  socket.on("error", () => undefined);
  return socket;
}

function h2session(): http2.ClientHttp2Session {
  const session = track(http2.connect(url));
  session.on("error", () => undefined);
  return session;
}

/** Seconds until the server closed the socket, bucketed, or "still open after N s" (then destroyed). */
function closedWithin(socket: net.Socket, boundMs: number): Promise<string> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve("closed at once");
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`still open after ${boundMs / 1000} s (destroyed by us)`);
    }, boundMs);
    socket.once("close", () => {
      clearTimeout(timer);
      if (tearingDown) return resolve("cut by the soak at the end of the run");
      const s = (Date.now() - t0) / 1000;
      resolve(`closed by the server within ${s < 1 ? "1" : s < 5 ? "5" : s < 12 ? "12" : s < 20 ? "20" : s < 35 ? "35" : s < 45 ? "45" : "60"} s`);
    });
    // Data the server sends must be read, or the close is never seen.
    socket.resume();
  });
}

/** Reads HTTP/2 frames off a raw socket until it closes: whether a GOAWAY came, and its code. */
function goawayThenClose(socket: net.Socket, boundMs: number): Promise<string> {
  let buffered = Buffer.alloc(0);
  let goaway: number | undefined;
  let skippedPreface = false;
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (!skippedPreface) skippedPreface = true;
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const type = buffered[3];
      if (type === 7 && length >= 8) goaway = buffered.readUInt32BE(9 + 4);
      buffered = buffered.subarray(9 + length);
    }
  });
  return closedWithin(socket, boundMs).then((closed) => `${goaway === undefined ? "no GOAWAY" : `GOAWAY ${h2ErrorName(goaway)}`}, ${closed}`);
}

function h2ErrorName(code: number): string {
  const names = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"];
  return names[code] ?? `code ${code}`;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer, declaredLength = payload.length): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(declaredLength, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

const SETTINGS_EMPTY = frame(4, 0, 0, Buffer.alloc(0));
const MALFORMED_FRAMES: Array<[string, () => Buffer]> = [
  ["DATA on stream 0", () => frame(0, 0, 0, rng.bytes(16))],
  ["HEADERS with a garbage HPACK block", () => frame(1, 0x4 | 0x1, 1, rng.bytes(rng.range(1, 200)))],
  ["SETTINGS of a length not a multiple of 6", () => frame(4, 0, 0, rng.bytes(7))],
  ["WINDOW_UPDATE of 0 on the connection", () => frame(8, 0, 0, Buffer.alloc(4))],
  ["a frame longer than SETTINGS_MAX_FRAME_SIZE", () => frame(0, 0, 1, rng.bytes(64), 1 << 20)],
  ["PING of the wrong length", () => frame(6, 0, 0, rng.bytes(5))],
  ["CONTINUATION without HEADERS", () => frame(9, 0x4, 1, rng.bytes(20))],
  ["HEADERS on an even stream id", () => frame(1, 0x4 | 0x1, 2, Buffer.from([0x82, 0x86, 0x84]))],
  ["RST_STREAM on an idle stream", () => frame(3, 0, 7, Buffer.alloc(4))],
  ["an unknown frame type, then garbage", () => Buffer.concat([frame(0xfa, 0, 0, rng.bytes(10)), rng.bytes(rng.range(9, 64))])],
  ["a HEADERS frame left without END_HEADERS", () => frame(1, 0x1, 1, Buffer.from([0x82, 0x86, 0x84]))],
];

/** Methods for abandoned and broken streams: real paths, each with its input descriptor. */
const targets: DescMethod[] = [
  CatalogService.method.listProducts,
  CatalogService.method.getProduct,
  UserService.method.login,
  OrderService.method.createOrder,
  OrderService.method.watchOrder,
  Health.method.check,
  Health.method.watch,
];
const pathOf = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

/** A request's headers; a valid token now and then, so some reach past authentication. */
function grpcHeaders(method: DescMethod): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": pathOf(method), "content-type": "application/grpc", te: "trailers" };
  if (rng.chance(0.5)) headers.authorization = `Bearer ${rng.pick(customers).token}`;
  return headers;
}

/** A request body the server never sees the end of: an envelope header promising more than follows. */
function unfinishedBody(method: DescMethod): Buffer {
  const payload = Buffer.from(toBinary(method.input, generateMessage(method.input, rng, { mode: "plausible", dictionary: skus })));
  const promised = payload.length + rng.range(1, 5000);
  return envelope(payload, 0, promised).subarray(0, 5 + rng.int(payload.length + 1));
}

function streamAnswer(stream: http2.ClientHttp2Stream, boundMs: number, onBound: () => void): Promise<string> {
  return new Promise((resolve) => {
    let status: string | undefined;
    const t0 = Date.now();
    const timer = setTimeout(() => {
      onBound();
      resolve(`no answer within ${boundMs / 1000} s`);
    }, boundMs);
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = Code[Number(h["grpc-status"])] ?? String(h["grpc-status"]);
      else if (h[":status"] !== undefined && Number(h[":status"]) !== 200) status = `HTTP ${h[":status"]}`;
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      if (tearingDown && !status) return resolve("cut by the soak at the end of the run");
      const s = (Date.now() - t0) / 1000;
      resolve(status ? `${status} within ${s < 2 ? 2 : s < 6 ? 6 : s < 12 ? 12 : s < 32 ? 32 : 45} s` : `reset without a status (RST ${h2ErrorName(stream.rstCode ?? 0)})`);
    });
  });
}

/** One stream left with an unfinished body, then the connection dropped the given way. */
async function abandonStream(drop: (session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream) => Promise<void>): Promise<string> {
  const session = h2session();
  const method = rng.pick(targets);
  const stream = session.request(grpcHeaders(method));
  stream.on("error", () => undefined);
  stream.write(unfinishedBody(method));
  await sleep(rng.range(0, 300));
  await drop(session, stream);
  return "dropped";
}

/** A burst sent on one new session once it connects; reports the GOAWAY it earned within waitMs, if any. */
function burstOnOneSession(waitMs: number, burst: (session: http2.ClientHttp2Session) => void): Promise<string> {
  return new Promise((resolve) => {
    const session = h2session();
    let code: number | undefined;
    session.on("goaway", (c: number) => (code = c));
    session.once("connect", () => burst(session));
    setTimeout(() => {
      session.destroy();
      resolve(code === undefined ? `no GOAWAY within ${waitMs / 1000} s` : `GOAWAY ${h2ErrorName(code)}`);
    }, waitMs);
  });
}

const actions: Array<{ kind: string; weight: number; run: () => Promise<string> }> = [
  {
    kind: "abandoned stream, session destroyed",
    weight: 12,
    run: () => abandonStream(async (session) => session.destroy()),
  },
  {
    kind: "abandoned stream, RST_STREAM",
    weight: 12,
    run: () =>
      abandonStream(async (session, stream) => {
        stream.close(rng.pick([http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_INTERNAL_ERROR, http2.constants.NGHTTP2_NO_ERROR]));
        await sleep(20);
        session.close();
        setTimeout(() => session.destroy(), 1000).unref();
      }),
  },
  {
    kind: "abandoned stream, GOAWAY",
    weight: 8,
    run: () =>
      abandonStream(async (session) => {
        session.goaway(rng.pick([http2.constants.NGHTTP2_NO_ERROR, http2.constants.NGHTTP2_PROTOCOL_ERROR]));
        await sleep(50);
        session.destroy();
      }),
  },
  {
    kind: "unfinished body held open",
    weight: 5,
    run: async () => {
      // The server must answer (its request-body bound or the method's deadline) instead of waiting for ever.
      const session = h2session();
      const method = rng.pick(targets.filter((m) => m.methodKind === "unary"));
      const stream = session.request(grpcHeaders(method));
      stream.write(unfinishedBody(method));
      const outcome = await streamAnswer(stream, 45_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      session.destroy();
      return outcome;
    },
  },
  {
    kind: "silent socket",
    weight: 6,
    run: () => closedWithin(rawSocket(), 25_000),
  },
  {
    kind: "preface, then silence",
    weight: 4,
    run: () => {
      const socket = rawSocket();
      socket.write(PREFACE);
      return goawayThenClose(socket, 25_000);
    },
  },
  {
    kind: "slowloris on HTTP/1.1",
    weight: 4,
    run: async () => {
      const socket = rawSocket();
      socket.write(`GET /${rng.pick(["", "metrics", "healthz", "index.html"])} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
      // One header line every 2 s, never the blank line that ends them.
      const drip = setInterval(() => {
        if (!socket.destroyed) socket.write(`X-Slow-${rng.int(1000)}: ${"a".repeat(rng.range(1, 20))}\r\n`);
      }, 2000);
      const outcome = await closedWithin(socket, 60_000);
      clearInterval(drip);
      return outcome;
    },
  },
  {
    kind: "oversized headers, HTTP/1.1",
    weight: 5,
    run: () =>
      new Promise((resolve) => {
        const socket = rawSocket();
        const big = rng.chance(0.5) ? `X-Big: ${"a".repeat(rng.range(20_000, 100_000))}\r\n` : Array.from({ length: rng.range(200, 2000) }, (_, i) => `X-H${i}: v\r\n`).join("");
        socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${big}\r\n`);
        let first = "";
        socket.on("data", (c: Buffer) => {
          if (!first) first = c.toString("latin1").split("\r\n")[0];
        });
        void closedWithin(socket, 15_000).then((closed) => resolve(`${first || "no response"}, ${closed}`));
      }),
  },
  {
    kind: "oversized headers, HTTP/2",
    weight: 5,
    run: async () => {
      const session = h2session();
      const headers = grpcHeaders(Health.method.check);
      if (rng.chance(0.5)) headers["x-big"] = "a".repeat(rng.range(17_000, 60_000));
      else for (let i = 0; i < rng.range(130, 400); i++) headers[`x-h${i}`] = "v";
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers);
      } catch (err) {
        session.destroy();
        return `client refused to send: ${(err as { code?: string }).code}`;
      }
      stream.end(envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))));
      const outcome = await streamAnswer(stream, 10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      session.destroy();
      return outcome;
    },
  },
  {
    kind: "malformed frame",
    weight: 10,
    run: () => {
      const socket = rawSocket();
      const [name, make] = rng.pick(MALFORMED_FRAMES);
      socket.write(Buffer.concat([PREFACE, SETTINGS_EMPTY, make()]));
      return goawayThenClose(socket, 15_000).then((outcome) => `${name}: ${outcome}`);
    },
  },
  {
    kind: "random bytes after the preface",
    weight: 10,
    run: () => {
      const socket = rawSocket();
      socket.write(Buffer.concat([PREFACE, rng.chance(0.5) ? SETTINGS_EMPTY : Buffer.alloc(0), rng.bytes(rng.range(1, 4096))]));
      return goawayThenClose(socket, 15_000);
    },
  },
  {
    kind: "ping flood",
    weight: 4,
    run: () =>
      burstOnOneSession(3000, (session) => {
        for (let i = 0; i < 10; i++) {
          try {
            session.ping(() => undefined);
          } catch {
            break;
          }
        }
      }),
  },
  {
    kind: "rapid reset (100 streams opened and cancelled)",
    weight: 3,
    run: () =>
      burstOnOneSession(2000, (session) => {
        for (let i = 0; i < 100 && !session.destroyed && !session.closed; i++) {
          try {
            const stream = session.request(grpcHeaders(rng.pick(targets)));
            stream.on("error", () => undefined);
            stream.close(http2.constants.NGHTTP2_CANCEL);
          } catch {
            break;
          }
        }
      }),
  },
  {
    kind: "broken gRPC envelope",
    weight: 10,
    run: async () => {
      const session = h2session();
      const method = rng.pick(targets);
      const messages = [generateMessage(method.input, rng, { mode: rng.chance(0.5) ? "plausible" : "wild", dictionary: skus })];
      const plan = mutate(rng.pick(MUTATIONS), method, messages, rng, 4 * 1024 * 1024);
      const headers = { ...grpcHeaders(method), ...plan.headers };
      const stream = session.request(headers);
      for (const chunk of plan.chunks) stream.write(chunk);
      stream.end();
      const outcome = await streamAnswer(stream, 8_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      session.destroy();
      // Where the answer reads "INTERNAL", only a compressed flag without grpc-encoding earns it.
      return `${plan.kind}: ${outcome.replace(/ within \d+ s$/, "")}`;
    },
  },
];
const actionWeights = actions.reduce((s, a) => s + a.weight, 0);

function hostileAction(): void {
  if (hostileInFlight >= MAX_HOSTILE_IN_FLIGHT) {
    hostileSkipped++;
    return;
  }
  const action = pickWeighted(actions, actionWeights);
  let outcomes = hostileByKind.get(action.kind);
  if (!outcomes) hostileByKind.set(action.kind, (outcomes = new Map()));
  hostileInFlight++;
  // Every action ends by itself; this bound is the backstop.
  let backstop: NodeJS.Timeout | undefined;
  const bounded = new Promise<string>((resolve) => (backstop = setTimeout(() => resolve("backstop: still running after 90 s"), 90_000)));
  Promise.race([action.run().catch((err: unknown) => `threw: ${(err as Error).message?.slice(0, 80)}`), bounded])
    .then((outcome) => inc(outcomes, outcome))
    .finally(() => {
      clearTimeout(backstop);
      hostileInFlight--;
    });
}

// ---------------------------------------------------------------- the run

let crashed = false;
void exited.then(() => {
  if (!stopping) {
    crashed = true;
    log(`THE SHOP EXITED: code ${exitInfo?.code} signal ${exitInfo?.signal}`);
  }
});

let validIssued = 0;
let hostileIssued = 0;
const trafficStart = Date.now();
const tick = setInterval(() => {
  if (crashed) return;
  const seconds = (Date.now() - trafficStart) / 1000;
  while (validIssued < Math.floor(seconds * RATE)) {
    validIssued++;
    validCall();
  }
  while (hostileIssued < Math.floor(seconds * HOSTILE_RATE)) {
    hostileIssued++;
    hostileAction();
  }
}, 20);

sample();
const sampler = setInterval(() => {
  if (!crashed) sample();
}, SAMPLE_EVERY_MS);
let lastReport = Date.now();
const reports: Array<{ minute: string; rss: string; heap: string; handles: string; ok: number; failed: number; hostile: number }> = [];
const report = async () => {
  const text = await metricsText();
  const ok = validCodes.get("OK") ?? 0;
  const failed = [...validCodes].reduce((s, [k, v]) => (k === "OK" ? s : s + v), 0);
  const hostile = [...hostileByKind.values()].reduce((s, m) => s + [...m.values()].reduce((a, b) => a + b, 0), 0);
  const heap = metricValue(text, "nodejs_heap_size_used_bytes");
  const handles = metricValue(text, "nodejs_active_handles_total");
  const entry = { minute: minutesNow(), rss: mb(samples[samples.length - 1]?.rssKb), heap: heap === undefined ? "?" : `${(heap / 1048576).toFixed(1)} MB`, handles: handles === undefined ? "?" : String(handles), ok, failed, hostile };
  reports.push(entry);
  log(`RSS ${entry.rss}, heap used ${entry.heap}, active handles ${entry.handles}; valid ok ${ok} failed ${failed} (in flight ${validInFlight}); hostile done ${hostile} (in progress ${hostileInFlight})`);
};

while (elapsed() < DURATION_MS && !crashed) {
  await sleep(1000);
  if (Date.now() - lastReport >= REPORT_EVERY_MS) {
    lastReport = Date.now();
    await report();
  }
}
// The end sample is taken under the same traffic as the baseline.
sample();
const endSamples = samples.slice(-3);
clearInterval(tick);
clearInterval(sampler);

// Let what is in flight finish (bounded), then check the shop still answers.
const drainUntil = Date.now() + 15_000;
while ((validInFlight > 0 || hostileInFlight > 0) && Date.now() < drainUntil) await sleep(200);
tearingDown = true;
for (const thing of open) thing.destroy();
let aliveAtEnd = false;
if (!crashed) {
  try {
    await health.check({ service: "" }, { timeoutMs: 5000 });
    await catalog.listProducts({ pageSize: 3 }, { timeoutMs: 5000 });
    aliveAtEnd = true;
  } catch (err) {
    log(`the shop did not answer at the end: ${(err as Error).message}`);
  }
}
const finalMetrics = crashed ? undefined : await metricsText();
await sleep(3000);
const idleRss = crashed ? undefined : rssKb(child.pid!);

stopping = true;
if (!exitInfo) {
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(20_000)]);
  if (!exitInfo) {
    child.kill("SIGKILL");
    await exited;
  }
}
rmSync(dataDir, { recursive: true, force: true });

// ---------------------------------------------------------------- summary

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? undefined : s[Math.floor((s.length - 1) / 2)];
};
const baselineAt = BASELINE_MINUTE * 60_000;
const baselineKb = median(samples.filter((s) => Math.abs(s.atMs - baselineAt) <= 15_000).map((s) => s.rssKb));
const endKb = median(endSamples.map((s) => s.rssKb));
const ratio = baselineKb && endKb ? endKb / baselineKb : undefined;
const percentile = (p: number) => {
  const s = [...latencies].sort((a, b) => a - b);
  return s.length === 0 ? "?" : `${s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1)} ms`;
};

const out: string[] = [];
out.push("", "==== soak summary ====");
out.push(`duration ${(elapsed() / 60_000).toFixed(1)} min (asked ${MINUTES}), seed ${SEED}`);
out.push(`RSS: start ${mb(samples[0]?.rssKb)}, minute ${BASELINE_MINUTE} ${mb(baselineKb)}, end ${mb(endKb)}, ratio ${ratio === undefined ? "?" : ratio.toFixed(3)} (limit ${(1 + MAX_GROWTH).toFixed(2)}); 3 s after traffic stopped ${mb(idleRss)}`);
out.push(`RSS every 30 s: ${samples.filter((_, i) => i % 3 === 0).map((s) => `${(s.atMs / 60_000).toFixed(1)}m ${(s.rssKb / 1024).toFixed(0)}`).join(", ")} (MB)`);
out.push(`heap used / active handles every 30 s: ${reports.map((r) => `${r.minute}m ${r.heap}/${r.handles}`).join(", ")}`);
const okCount = validCodes.get("OK") ?? 0;
const failedCount = [...validCodes].reduce((s, [k, v]) => (k === "OK" ? s : s + v), 0);
out.push(`valid calls: ${okCount} ok, ${failedCount} failed, ${validSkipped} skipped (over ${MAX_VALID_IN_FLIGHT} in flight); latency p50 ${percentile(0.5)} p99 ${percentile(0.99)}`);
out.push(`  by code: ${[...validCodes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ")}`);
for (const [name, s] of [...validByCall].sort()) {
  const failed = [...s.failed].map(([k, v]) => `${k} ${v}`).join(", ");
  out.push(`  ${name.padEnd(18)} ok ${String(s.ok).padStart(6)}${failed ? `  failed: ${failed}` : ""}`);
}
const hostileTotal = [...hostileByKind.values()].reduce((s, m) => s + [...m.values()].reduce((a, b) => a + b, 0), 0);
out.push(`hostile actions: ${hostileTotal} done, ${hostileSkipped} skipped (over ${MAX_HOSTILE_IN_FLIGHT} in progress)`);
for (const [kind, outcomes] of [...hostileByKind].sort()) {
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
  out.push(`  ${kind} (${total}):`);
  for (const [outcome, n] of [...outcomes].sort((a, b) => b[1] - a[1]).slice(0, 16)) out.push(`      ${String(n).padStart(5)}  ${outcome}`);
}
const refused = refusals(finalMetrics);
out.push(`transport refusals (rpc_server_refused_total): ${refused.size === 0 ? "none read" : [...refused].map(([k, v]) => `${k} ${v}`).join(", ")}`);
out.push(`shop log lines by level: ${[...logLevels].map(([k, v]) => `${k} ${v}`).join(", ")}`);
if (errorMessages.size > 0) {
  out.push(`error lines by message: ${[...errorMessages].map(([k, v]) => `"${k}" ${v}`).join(", ")}`);
  for (const line of errorLines) out.push(`  ${line}`);
}
out.push(`alive at the end: ${aliveAtEnd ? "yes" : "NO"}`);
out.push(`crashed: ${crashed ? `YES (exit code ${exitInfo?.code}, signal ${exitInfo?.signal}, at minute ${((exitInfo?.atMs ?? 0) / 60_000).toFixed(1)})` : "no"}; exit after SIGTERM: code ${exitInfo?.code} signal ${exitInfo?.signal}`);
if (crashed) out.push(`stderr tail:\n  ${stderrTail.join("\n  ")}`);
const grew = ratio === undefined || ratio > 1 + MAX_GROWTH;
const verdict = crashed ? "FAIL: the shop crashed" : !aliveAtEnd ? "FAIL: the shop stopped answering" : grew ? `FAIL: RSS grew ${ratio === undefined ? "(not measured)" : `${((ratio - 1) * 100).toFixed(1)}%`} from minute ${BASELINE_MINUTE} to the end` : "PASS";
out.push(`verdict: ${verdict}`);
process.stdout.write(out.join("\n") + "\n");
process.exit(verdict === "PASS" ? 0 : 1);
