// A seeded fuzzer over every RPC the shop serves: the whole shop in this
// process on a loopback port, and for each method of each registered service
// (health, reflection, ops and event admin included) valid messages built
// from the method's input descriptor and broken ones built from those,
// sent over raw node:http2 with gRPC framing done here, so that malformed
// envelopes are possible. Every call must end with a grpc-status within a
// bound, never INTERNAL or UNKNOWN (a handler bug) except the one INTERNAL
// the gRPC spec asks for; the shop must keep serving after every batch, with
// no call left in flight and no transport defect or handler bug in its log.
//
// The seed is printed; FUZZ_SEED=<n> repeats a run, FUZZ_METHOD=<substring
// of the path> narrows it to some methods (each method's inputs come from
// its own seed, so a narrowed run sends the same bytes, ids aside).
import { expect } from "chai";
import * as http2 from "node:http2";
import type { ClientHttp2Session, IncomingHttpHeaders } from "node:http2";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, fromJsonString, toBinary, toJson } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, Message } from "@bufbuild/protobuf";
import { contractOf } from "@shop/platform";
import { CatalogService, ListProductsResponseSchema } from "../../gen/shop/catalog/v1/catalog_pb.js";
import { OrderService } from "../../gen/shop/orders/v1/orders_pb.js";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { HealthCheckRequestSchema } from "../../gen/health/v1/health_pb.js";
import { allServices } from "../../runner/services.ts";
import { startTestShop } from "../support/shop.ts";
import { strangerAuthority, testAuthority } from "../support/keys.ts";
import type { TestShop } from "../support/shop.ts";
import { deriveSeed, encodeValid, envelope, generateMessage, hexPreview, MUTATIONS, mutate, Rng, runSeed } from "./fuzz-messages.ts";
import type { GenerateMode, WirePlan } from "./fuzz-messages.ts";

/** FUZZ_VALID and FUZZ_MUTATED raise the counts for a longer hunt. */
const VALID_PER_METHOD = Number(process.env.FUZZ_VALID ?? 10);
const MUTATED_PER_METHOD = Number(process.env.FUZZ_MUTATED ?? 10);
/** Every call must have its status (or, for a stream, its messages) within this. */
const ANSWER_WITHIN_MS = 5_000;
/** A server stream is cancelled after this many messages, or this long after its last one. */
const STREAM_MESSAGES = 3;
const STREAM_IDLE_MS = 400;
const CONCURRENCY = 4;
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const CODE_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];
const codeName = (code: number | undefined) => (code === undefined ? "none" : (CODE_NAMES[code] ?? `code ${code}`));

// ---------------------------------------------------------------- raw gRPC client

interface RawAnswer {
  httpStatus?: number;
  status?: number;
  message?: string;
  trailersOnly: boolean;
  /** Response message payloads, decompressed. */
  messages: Buffer[];
  /** We cancelled a server stream after enough messages, or when it went quiet after one. */
  cancelledByUs: boolean;
  /** No status and no reason of ours to stop within ANSWER_WITHIN_MS. */
  timedOut: boolean;
  /** The stream failed under us: reset by the server, or its session died. */
  error?: string;
  elapsedMs: number;
  /** The response envelopes could not be parsed. */
  framingError?: string;
}

interface RawRequest {
  path: string;
  headers: Record<string, string>;
  chunks: Buffer[];
  streamingResponse: boolean;
}

/** One HTTP/2 connection, reopened when it dies; gRPC framing is done by hand. */
class RawGrpcClient {
  private session: ClientHttp2Session | undefined;
  private readonly url: string;

  constructor(url: string) {
    this.url = url;
  }

  private connection(): ClientHttp2Session {
    if (!this.session || this.session.destroyed || this.session.closed) {
      const session = http2.connect(this.url);
      session.on("error", () => undefined);
      this.session = session;
    }
    return this.session;
  }

  close(): void {
    this.session?.destroy();
  }

  call(request: RawRequest): Promise<RawAnswer> {
    return new Promise((resolve) => {
      const started = performance.now();
      const answer: RawAnswer = { trailersOnly: false, messages: [], cancelledByUs: false, timedOut: false, elapsedMs: 0 };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.connection().request({ ":method": "POST", ":path": request.path, te: "trailers", ...request.headers });
      } catch (err) {
        // The session was closing under us: one retry on a fresh one.
        this.session = undefined;
        stream = this.connection().request({ ":method": "POST", ":path": request.path, te: "trailers", ...request.headers });
        void err;
      }
      let responseHeaders: IncomingHttpHeaders | undefined;
      let gzip = false;
      let buffered: Buffer = Buffer.alloc(0);
      let idle: NodeJS.Timeout | undefined;
      const cancel = () => {
        if (answer.status !== undefined || stream.closed) return;
        answer.cancelledByUs = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      const bound = setTimeout(() => {
        if (answer.status !== undefined) return;
        if (request.streamingResponse && answer.messages.length > 0) return cancel();
        answer.timedOut = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, ANSWER_WITHIN_MS);
      const statusFrom = (h: IncomingHttpHeaders) => {
        const raw = h["grpc-status"];
        if (raw === undefined) return;
        answer.status = Number(Array.isArray(raw) ? raw[0] : raw);
        const message = h["grpc-message"];
        if (message !== undefined) {
          const text = Array.isArray(message) ? message[0] : message;
          try {
            answer.message = decodeURIComponent(text);
          } catch {
            answer.message = text;
          }
        }
      };
      stream.on("response", (h, flags) => {
        responseHeaders = h;
        answer.httpStatus = Number(h[":status"]);
        gzip = h["grpc-encoding"] === "gzip";
        if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
          answer.trailersOnly = true;
          statusFrom(h);
        }
      });
      stream.on("trailers", (t) => statusFrom(t));
      stream.on("data", (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        while (buffered.length >= 5) {
          const length = buffered.readUInt32BE(1);
          if (buffered.length < 5 + length) break;
          const flags = buffered[0];
          let payload: Buffer = buffered.subarray(5, 5 + length);
          buffered = buffered.subarray(5 + length);
          if (flags & 1) {
            if (!gzip) answer.framingError = "compressed response message without grpc-encoding: gzip";
            else {
              try {
                payload = gunzipSync(payload);
              } catch {
                answer.framingError = "response message is not valid gzip";
              }
            }
          }
          answer.messages.push(payload);
        }
        if (request.streamingResponse && answer.messages.length > 0) {
          if (answer.messages.length >= STREAM_MESSAGES) return cancel();
          clearTimeout(idle);
          idle = setTimeout(cancel, STREAM_IDLE_MS);
        }
      });
      stream.on("error", (err: Error) => {
        if (!answer.cancelledByUs && !answer.timedOut) answer.error = err.message;
      });
      stream.on("close", () => {
        clearTimeout(bound);
        clearTimeout(idle);
        answer.elapsedMs = performance.now() - started;
        if (!responseHeaders && !answer.cancelledByUs && !answer.timedOut && !answer.error) answer.error = `stream closed without response headers (RST_STREAM ${stream.rstCode})`;
        if (buffered.length > 0 && answer.status !== undefined && !answer.framingError) answer.framingError = `${buffered.length} bytes of an incomplete response envelope`;
        resolve(answer);
      });
      for (const chunk of request.chunks) stream.write(chunk);
      stream.end();
    });
  }
}

// ---------------------------------------------------------------- tokens

type AuthKind = "none" | "user" | "user-unknown" | "service" | "expired" | "forged" | "garbage" | "scheme";
const AUTH_KINDS: AuthKind[] = ["none", "user", "user-unknown", "service", "expired", "forged", "garbage", "scheme"];

function matchingAuth(audience: string): AuthKind[] {
  if (audience === "user") return ["user"];
  if (audience === "service") return ["service"];
  return ["none", "user"];
}

// ---------------------------------------------------------------- cases

interface FuzzCase {
  index: number;
  plan: WirePlan;
  auth: AuthKind;
  extraHeaders: Record<string, string>;
}

interface Failure {
  path: string;
  index: number;
  kind: string;
  auth: AuthKind;
  headers: Record<string, string>;
  problem: string;
  body: string;
}

function buildCases(method: DescMethod, seed: number, dictionary: readonly string[]): FuzzCase[] {
  const path = `/${method.parent.typeName}/${method.name}`;
  const rng = new Rng(deriveSeed(seed, path));
  const audience = contractOf(method).audience;
  const single = method.methodKind === "unary" || method.methodKind === "server_streaming";
  const messagesFor = (mode: GenerateMode): Message[] => {
    const n = single ? 1 : rng.range(1, 4);
    return Array.from({ length: n }, () => generateMessage(method.input, rng, { mode, dictionary }));
  };
  const headersFor = (): Record<string, string> => {
    const extra: Record<string, string> = {};
    if (rng.chance(0.5)) extra["grpc-accept-encoding"] = "gzip";
    // A deadline on some calls: streams then end with a status of their own.
    if (rng.chance(0.25)) extra["grpc-timeout"] = rng.pick(["100m", "300m", "2S", "1500000u", "90000000n", "1H"]);
    return extra;
  };
  const authFor = (pMatching: number): AuthKind => (rng.chance(pMatching) ? rng.pick(matchingAuth(audience)) : rng.pick(AUTH_KINDS));
  const cases: FuzzCase[] = [];
  for (let i = 0; i < VALID_PER_METHOD; i++) {
    const messages = messagesFor((["conforming", "wild", "plausible"] as const)[i % 3]);
    cases.push({ index: cases.length, plan: encodeValid(method.input, messages, rng, true), auth: authFor(0.75), extraHeaders: headersFor() });
  }
  // Every kind once in a seeded order, then again, as many as asked.
  const kinds = Array.from({ length: Math.ceil(MUTATED_PER_METHOD / MUTATIONS.length) }, () => rng.shuffle(MUTATIONS)).flat().slice(0, MUTATED_PER_METHOD);
  for (const kind of kinds) {
    const roll = rng.next();
    const messages = messagesFor(roll < 0.5 ? "conforming" : roll < 0.75 ? "plausible" : "wild");
    cases.push({ index: cases.length, plan: mutate(kind, method, messages, rng, MAX_MESSAGE_BYTES), auth: authFor(0.6), extraHeaders: headersFor() });
  }
  return cases;
}

/** What is wrong with an answer, or undefined when it is acceptable. */
function judge(method: DescMethod, c: FuzzCase, answer: RawAnswer): string | undefined {
  const plan = c.plan;
  const streamingResponse = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
  const streamingRequest = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  if (answer.timedOut) return `no grpc-status within ${ANSWER_WITHIN_MS} ms (${answer.messages.length} messages received)`;
  if (answer.error) return `the stream failed without a status: ${answer.error}`;
  if (answer.framingError) return `malformed response: ${answer.framingError}`;
  if (answer.httpStatus !== 200) return `HTTP status ${answer.httpStatus}`;
  if (answer.status === undefined) {
    if (answer.cancelledByUs && streamingResponse) return undefined;
    return "the response ended without grpc-status";
  }
  const status = answer.status;
  const said = `${codeName(status)}${answer.message ? ` "${answer.message.slice(0, 200)}"` : ""}`;
  // A streaming request is authorized before its messages are read: without
  // a valid token it ends UNAUTHENTICATED or PERMISSION_DENIED first.
  const authorized = matchingAuth(contractOf(method).audience).includes(c.auth);
  if (streamingRequest && !authorized && (status === 16 || status === 7)) return undefined;
  // A deadline under a second may pass first on a loaded machine: that is an answer too.
  const timeout = c.extraHeaders["grpc-timeout"];
  if (status === 4 && timeout !== undefined && /^(\d+m|\d+u|\d+n)$/.test(timeout)) return undefined;
  if (plan.expect.kind === "code") {
    if (status !== plan.expect.code) return `expected ${codeName(plan.expect.code)}, got ${said}`;
    if (plan.expect.messageIncludes && !(answer.message ?? "").includes(plan.expect.messageIncludes)) return `expected a message about "${plan.expect.messageIncludes}", got ${said}`;
    return undefined;
  }
  if (status === 13) return `INTERNAL: ${said}`;
  if (status === 2) return `UNKNOWN: ${said}`;
  if (status < 0 || status > 16 || !Number.isInteger(status)) return `grpc-status outside the spec: ${status}`;
  if (plan.expect.kind === "not-ok" && status === 0) return `a broken request was answered OK`;
  if (status === 0) {
    if (!streamingResponse && answer.messages.length !== 1) return `OK with ${answer.messages.length} response messages`;
    for (const payload of answer.messages) {
      try {
        decode(method.output, payload, plan);
      } catch (err) {
        return `OK, but a response message does not decode as ${method.output.typeName}: ${(err as Error).message}`;
      }
    }
  }
  return undefined;
}

function decode(schema: DescMessage, payload: Buffer, plan: WirePlan): void {
  if (plan.headers["content-type"] === "application/grpc+json") fromJsonString(schema, new TextDecoder("utf-8", { fatal: true }).decode(payload));
  else fromBinary(schema, payload);
}

async function pool<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await run(items[next++]);
  });
  await Promise.all(workers);
}

/** Every short string in a response: ids, SKUs, names, for plausible requests. */
function harvest(schema: DescMessage, message: Message, into: Set<string>): void {
  const walk = (value: unknown): void => {
    if (typeof value === "string") {
      if (value.length > 0 && value.length <= 80) into.add(value);
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  walk(toJson(schema, message));
}

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("hostile clients: a seeded fuzzer over every RPC of the shop", function () {
  this.timeout(180_000);
  const seed = runSeed();
  const only = process.env.FUZZ_METHOD;
  let t: TestShop;
  let client: RawGrpcClient;
  const tokens: Record<AuthKind, string | undefined> = { none: undefined, user: "", "user-unknown": "", service: "", expired: "", forged: "", garbage: "Bearer not.a.jwt", scheme: "Basic dXNlcjpwYXNzd29yZA==" };
  const dictionary = new Set<string>();
  /** Values worth drawing more often than the rest: SKUs and the currency, so orders and quotes reach their handlers. */
  const favoured: string[] = [];

  before(async () => {
    process.stdout.write(`      fuzz seed ${seed} (FUZZ_SEED=${seed} repeats this run)\n`);
    t = await startTestShop(allServices);
    client = new RawGrpcClient(t.url);
    // A real shopper, products and an order, so plausible requests name things that exist.
    const email = `fuzz-${randomUUID().slice(0, 8)}@example.com`;
    const users = t.client(UserService);
    const { user } = await users.signUp({ email, password: "a-long-password", displayName: "Fuzz" });
    const { token } = await users.login({ email, password: "a-long-password" });
    const products = await t.client(CatalogService).listProducts({ pageSize: 100 });
    const { order } = await t.client(OrderService).createOrder(
      { idempotencyKey: randomUUID(), items: [{ sku: products.products[0].sku, quantity: 1 }], paymentMethod: "pm_card_ok" },
      t.as(token),
    );
    for (const value of [email, "a-long-password", user!.id, order!.orderId, "pm_card_ok", "pm_card_declined"]) dictionary.add(value);
    harvest(ListProductsResponseSchema, products, dictionary);
    for (const p of products.products) favoured.push(p.sku, p.sku);
    favoured.push("EUR", "EUR", order!.orderId, user!.id);
    for (const service of t.shop.server.services()) {
      dictionary.add(service.typeName);
      dictionary.add(service.file.name + ".proto");
      for (const method of service.methods) dictionary.add(`${service.typeName}.${method.name}`);
    }
    tokens.user = `Bearer ${token}`;
    tokens["user-unknown"] = `Bearer ${(await t.tokens.issueUserToken(randomUUID())).token}`;
    tokens.service = `Bearer ${await t.tokens.issueServiceToken("orders")}`;
    tokens.expired = `Bearer ${(await testAuthority({ userTokenTtlSeconds: -60 }).issueUserToken(user!.id)).token}`;
    tokens.forged = `Bearer ${(await strangerAuthority().issueUserToken(user!.id)).token}`;
  });

  after(async () => {
    client?.close();
    await t?.stop();
  });

  it("answers every call of every method with a status in time, never INTERNAL, and keeps serving", async () => {
    const services: DescService[] = t.shop.server.services();
    const methods = services.flatMap((s) => s.methods).filter((m) => !only || `/${m.parent.typeName}/${m.name}`.includes(only));
    expect(methods.length, "methods to fuzz").to.be.greaterThan(0);
    // The shop serves every kind but client streaming today; the client below handles that kind too.
    const kinds = new Set(methods.map((m) => m.methodKind));
    if (!only) expect([...kinds]).to.include.members(["unary", "server_streaming", "bidi_streaming"]);

    const failures: Failure[] = [];
    const byCode = new Map<string, number>();
    const byKind = new Map<string, number>();
    let calls = 0;
    let cancelled = 0;
    const started = performance.now();
    const words = [...dictionary, ...favoured];
    const logMark = { index: t.logs.length };
    const alive = async (path: string) => {
      const health = await client.call({
        path: "/grpc.health.v1.Health/Check",
        headers: { "content-type": "application/grpc" },
        chunks: [envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {})))],
        streamingResponse: false,
      });
      if (health.status !== 0) failures.push({ path, index: -1, kind: "liveness", auth: "none", headers: {}, problem: `health Check after the batch: ${codeName(health.status)} ${health.error ?? health.message ?? ""}`, body: "" });
      try {
        const page = await t.client(CatalogService).listProducts({ pageSize: 3 }, { timeoutMs: 5000 });
        if (page.products.length === 0) throw new Error("no products");
      } catch (err) {
        failures.push({ path, index: -1, kind: "liveness", auth: "none", headers: {}, problem: `ListProducts after the batch: ${(err as Error).message}`, body: "" });
      }
      // Nothing the batch sent may still hold a call open in the pipeline.
      if (!(await eventually(() => t.shop.server.lifecycle.inFlight === 0, 3000))) {
        failures.push({ path, index: -1, kind: "leak", auth: "none", headers: {}, problem: `${t.shop.server.lifecycle.inFlight} calls still in flight 3 s after the batch`, body: "" });
      }
      // A transport defect or a handler bug is logged even when the client saw a tidy status.
      for (const line of t.logs.slice(logMark.index)) {
        if (line.level === "error" || line.level === "fatal") {
          const err = line.err as { message?: string; stack?: string } | undefined;
          failures.push({ path, index: -1, kind: "log", auth: "none", headers: {}, problem: `error logged: ${String(line.msg)}: ${err?.stack?.split("\n").slice(0, 4).join(" | ") ?? err?.message ?? JSON.stringify(line).slice(0, 300)}`, body: "" });
        }
      }
      logMark.index = t.logs.length;
    };

    for (const method of methods) {
      const path = `/${method.parent.typeName}/${method.name}`;
      const streamingResponse = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
      const cases = buildCases(method, seed, words);
      const tally = new Map<string, number>();
      const samples = new Map<string, string>();
      await pool(cases, CONCURRENCY, async (c) => {
        const auth = tokens[c.auth];
        const headers = { ...c.plan.headers, ...c.extraHeaders, ...(auth === undefined ? {} : { authorization: auth }) };
        const answer = await client.call({ path, headers, chunks: c.plan.chunks, streamingResponse });
        calls++;
        if (answer.cancelledByUs) cancelled++;
        const asked = c.plan.expect.kind === "code" && c.plan.expect.code === 13 && answer.status === 13;
        const code = answer.status === undefined ? (answer.cancelledByUs ? "cancelled by the fuzzer" : "no status") : asked ? "INTERNAL as the spec asks (compressed flag, no grpc-encoding)" : codeName(answer.status);
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
        byKind.set(c.plan.kind, (byKind.get(c.plan.kind) ?? 0) + 1);
        tally.set(code, (tally.get(code) ?? 0) + 1);
        if (answer.message && !samples.has(code)) samples.set(code, answer.message.slice(0, 160));
        const problem = judge(method, c, answer);
        if (problem) {
          const display = { ...headers };
          if (display.authorization) display.authorization = c.auth;
          failures.push({ path, index: c.index, kind: c.plan.kind, auth: c.auth, headers: display, problem, body: hexPreview(c.plan.chunks) });
          // FUZZ_DUMP=<folder> keeps each failing request whole: its headers and its DATA chunks.
          if (process.env.FUZZ_DUMP) {
            mkdirSync(process.env.FUZZ_DUMP, { recursive: true });
            const name = `${path.slice(1).replace(/[^A-Za-z0-9.]+/g, "_")}-${c.index}`;
            writeFileSync(join(process.env.FUZZ_DUMP, `${name}.json`), JSON.stringify({ path, headers: display, problem, chunks: c.plan.chunks.map((b) => b.toString("base64")) }, null, 2));
          }
        }
      });
      await alive(path);
      if (process.env.FUZZ_VERBOSE) {
        process.stdout.write(`      ${path}: ${[...tally].map(([k, v]) => `${k} ${v}`).join(", ")}\n`);
        for (const [k, v] of samples) process.stdout.write(`        ${k}: ${v}\n`);
      }
    }

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const summary = [...byCode].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
    process.stdout.write(`      ${methods.length} methods, ${calls} calls in ${seconds} s (${cancelled} server streams cancelled by the fuzzer): ${summary}\n`);
    if (process.env.FUZZ_VERBOSE) process.stdout.write(`      cases by kind: ${[...byKind].map(([k, v]) => `${k} ${v}`).join(", ")}\n`);
    if (failures.length > 0) {
      const shown = process.env.FUZZ_VERBOSE ? failures.length : 40;
      const lines = failures.slice(0, shown).map((f) => `  ${f.path} case ${f.index} [${f.kind}, auth ${f.auth}, headers ${JSON.stringify(f.headers)}]: ${f.problem}${f.body ? `\n      body ${f.body}` : ""}`);
      const more = failures.length > shown ? `\n  ... and ${failures.length - shown} more (FUZZ_VERBOSE=1 lists all)` : "";
      expect.fail(`${failures.length} problems (FUZZ_SEED=${seed}; FUZZ_METHOD=<path> narrows the run):\n${lines.join("\n")}${more}`);
    }
  });
});
