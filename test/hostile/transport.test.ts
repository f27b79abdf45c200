// The hostile-client suite: clients that abandon streams at every phase, flood
// pings and SETTINGS, send headers one byte at a time, hold thousands of
// streams, or send random bytes. After each case the server process is alive
// and a real call succeeds; where a limit applies, the server enforces it
// within its bound. Loopback only; every loop is bounded in count and time.
import * as http2 from "node:http2";
import * as net from "node:net";
import { expect } from "chai";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../../gen/health/v1/health_pb.js";
import { Health } from "../../gen/health/v1/health_pb.js";
import { ChatRequestSchema, CountRequestSchema, EchoRequestSchema, EchoService, SumRequestSchema } from "../../gen/mesh/testing/v1/echo_pb.js";
import { Code, grpcClient } from "../support/connect-clients.ts";
import { errorOf } from "../support/errors.ts";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";
import type { RawConnection } from "./h2-frames.ts";
import { connectH2, connectRaw, envelope, Flag, frame, FrameType, goawayCode, grpcRequestHeaders, PREFACE, pingFrame, rstCode, settingsFrame } from "./h2-frames.ts";

const HEADERS_TIMEOUT_MS = 1000;
const IDLE_TIMEOUT_MS = 2000;
const REQUEST_BODY_TIMEOUT_MS = 1500;
const MAX_CONCURRENT_STREAMS = 250;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes, waiting for the socket to drain; stops when the server closed it. False once closed. */
async function send(conn: RawConnection, bytes: Buffer): Promise<boolean> {
  if (conn.socket.destroyed) return false;
  if (conn.write(bytes)) return true;
  await Promise.race([new Promise((resolve) => conn.socket.once("drain", resolve)), conn.closed, sleep(2_000)]);
  return !conn.socket.destroyed;
}

function message<I extends DescMessage>(schema: I, init: MessageInitShape<I>): Buffer {
  return envelope(toBinary(schema, create(schema, init)));
}

const grpcHeaders = (path: string, extra: Record<string, string> = {}) => ({
  ":method": "POST",
  ":path": path,
  "content-type": "application/grpc",
  te: "trailers",
  ...extra,
});

const paths = {
  echo: `/${EchoService.typeName}/Echo`,
  count: `/${EchoService.typeName}/Count`,
  sum: `/${EchoService.typeName}/Sum`,
  chat: `/${EchoService.typeName}/Chat`,
  check: `/${Health.typeName}/Check`,
};

/** The answer of one call on node:http2, as a client library would see it. */
interface Answer {
  status?: string;
  message?: string;
  rstCode?: number;
  trailersOnly: boolean;
  dataFrames: number;
}

function answerOf(stream: http2.ClientHttp2Stream, giveUpMs = 10_000): Promise<Answer> {
  return new Promise((resolve) => {
    const answer: Answer = { trailersOnly: false, dataFrames: 0 };
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(answer);
    }, giveUpMs);
    stream.on("response", (headers, flags) => {
      if (flags & Flag.END_STREAM) answer.trailersOnly = true;
      if (headers["grpc-status"] !== undefined) {
        answer.status = String(headers["grpc-status"]);
        answer.message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      }
    });
    stream.on("trailers", (trailers) => {
      answer.status = String(trailers["grpc-status"]);
      answer.message = decodeURIComponent(String(trailers["grpc-message"] ?? ""));
    });
    stream.on("data", () => answer.dataFrames++);
    stream.on("error", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      answer.rstCode = stream.rstCode;
      resolve(answer);
    });
  });
}

describe("hostile clients: the transport survives and enforces its limits", function () {
  this.timeout(60_000);
  let server: ServerProcess;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {
      ECHO_INSTANCE: "hostile",
      LOG_LEVEL: "info",
      HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
      REQUEST_BODY_TIMEOUT_MS: String(REQUEST_BODY_TIMEOUT_MS),
    });
  });

  after(async function () {
    await server?.stop();
  });

  /** The process is alive and serves a real call, and no call is left in flight. */
  async function expectServing(): Promise<void> {
    expect(server.child.exitCode, "the server process exited").to.equal(null);
    const res = await grpcClient(EchoService, server.url).echo({ message: "still here" });
    expect(res.message).to.equal("still here");
    const deadline = performance.now() + 8_000;
    let inFlight = Number.NaN;
    while (performance.now() < deadline) {
      inFlight = await metricSum("rpc_server_in_flight");
      if (inFlight === 0) break;
      await sleep(100);
    }
    expect(inFlight, "calls still in flight after the client left").to.equal(0);
  }

  async function metricSum(name: string, labels = ""): Promise<number> {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return sum;
  }

  describe("abandoned streams never take the process down", function () {
    const phases = ["headers only", "partial frame", "mid server stream", "mid client stream", "mid bidi"] as const;
    const drops = ["destroy", "RST_STREAM of each", "GOAWAY"] as const;

    async function abandon(count: number, phase: (typeof phases)[number], drop: (typeof drops)[number]): Promise<void> {
      const session = http2.connect(server.url);
      session.on("error", () => undefined);
      await new Promise<void>((resolve) => session.once("connect", () => resolve()));
      const streams: http2.ClientHttp2Stream[] = [];
      const firstData: Array<Promise<void>> = [];
      for (let i = 0; i < count; i++) {
        const path = phase === "mid server stream" ? paths.count : phase === "mid client stream" ? paths.sum : phase === "mid bidi" ? paths.chat : paths.echo;
        const stream = session.request(grpcHeaders(path), { endStream: false });
        stream.on("error", () => undefined);
        streams.push(stream);
        if (phase === "partial frame") stream.write(envelope(Buffer.alloc(10), 100));
        if (phase === "mid server stream") stream.end(message(CountRequestSchema, { n: 1000, intervalMs: 10 }));
        if (phase === "mid client stream") for (let m = 0; m < 3; m++) stream.write(message(SumRequestSchema, { value: 1n }));
        if (phase === "mid bidi") stream.write(message(ChatRequestSchema, { text: "hello" }));
        // Streams past the server's limit wait on the client's side: wait only for those it took.
        if ((phase === "mid server stream" || phase === "mid bidi") && i < MAX_CONCURRENT_STREAMS) firstData.push(new Promise((resolve) => stream.once("data", () => resolve())));
      }
      // Let the server take every stream it will take before the client leaves.
      const settled = Promise.all(firstData).then(() => sleep(50));
      await Promise.race([settled, sleep(phase === "mid server stream" || phase === "mid bidi" ? 4_000 : 300)]);
      await new Promise<void>((resolve) => (session.destroyed ? resolve() : session.ping(() => resolve())));
      if (drop === "destroy") session.destroy();
      if (drop === "RST_STREAM of each") {
        for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
        session.close();
      }
      if (drop === "GOAWAY") {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR);
        session.destroy();
      }
      await sleep(100);
    }

    for (const count of [2, 50, 1000]) {
      for (const phase of phases) {
        for (const drop of drops) {
          it(`${count} streams, ${phase}, dropped by ${drop}`, async function () {
            await abandon(count, phase, drop);
            await expectServing();
          });
        }
      }
    }
  });

  describe("the stream lifecycle", function () {
    it("a client-streaming handler that stops reading answers its status, then closes the unread side with RST_STREAM(NO_ERROR)", async function () {
      const session = http2.connect(server.url);
      try {
        const stream = session.request(grpcHeaders(paths.sum), { endStream: false });
        const answer = answerOf(stream);
        stream.write(message(SumRequestSchema, { value: 10n, stopAbove: 5n }));
        const got = await answer;
        expect(got.status, got.message).to.equal("0");
        expect(got.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
      } finally {
        session.close();
      }
      // The frames themselves: trailers with END_STREAM, then RST_STREAM(NO_ERROR), never CANCEL.
      const conn = await connectH2(server.port);
      try {
        conn.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders(paths.sum)));
        conn.write(frame(FrameType.DATA, 0, 1, message(SumRequestSchema, { value: 10n, stopAbove: 5n })));
        const rst = await conn.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 5_000);
        expect(rst, "no RST_STREAM for the unread request side").to.not.equal(undefined);
        expect(rstCode(rst!)).to.equal(http2.constants.NGHTTP2_NO_ERROR);
        const endStream = conn.frames.findIndex((f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0);
        expect(endStream, "the status came before the reset").to.be.greaterThan(-1).and.lessThan(conn.frames.indexOf(rst!));
      } finally {
        conn.destroy();
      }
    });

    it("a bidi handler that fails while the client still sends answers that status, not CANCEL", async function () {
      const session = http2.connect(server.url);
      try {
        const stream = session.request(grpcHeaders(paths.chat), { endStream: false });
        const answer = answerOf(stream);
        stream.write(message(ChatRequestSchema, { text: "one" }));
        stream.write(message(ChatRequestSchema, { text: "two", failCode: Code.FailedPrecondition }));
        const got = await answer;
        expect(got.status).to.equal(String(Code.FailedPrecondition));
        expect(got.message).to.contain("chat ended by request");
        expect(got.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
      } finally {
        session.close();
      }
    });

    it("a second request message on a unary call is refused, whether or not it shares a DATA frame with the first", async function () {
      const session = http2.connect(server.url);
      try {
        for (const split of [false, true]) {
          const stream = session.request(grpcHeaders(paths.check), { endStream: false });
          const answer = answerOf(stream);
          const one = message(HealthCheckRequestSchema, {});
          if (split) {
            stream.write(one);
            await sleep(20);
            stream.end(one);
          } else stream.end(Buffer.concat([one, one]));
          const got = await answer;
          expect(got.status, `split into two frames: ${split}`).to.equal(String(Code.Unimplemented));
        }
      } finally {
        session.close();
      }
    });

    it("a status message cut in the middle of a surrogate pair still answers", async function () {
      const client = grpcClient(Health, server.url);
      for (const service of ["a".repeat(199) + "😀", "b".repeat(1023) + "😀".repeat(10), "\ud800 lone"]) {
        const err = await errorOf(client.check({ service }, { timeoutMs: 3_000 }));
        expect(err.code, err.message).to.equal(Code.NotFound);
      }
    });

    it("a client stream the client resets is never taken for a complete request", async function () {
      const from = server.logs.length;
      // By hand: node's client half-closes (END_STREAM) before it resets, which makes a complete request.
      const conn = await connectH2(server.port);
      try {
        conn.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders(paths.sum)));
        for (let i = 0; i < 3; i++) conn.write(frame(FrameType.DATA, 0, 1, message(SumRequestSchema, { value: 1n })));
        await sleep(100);
        const rst = Buffer.alloc(4);
        rst.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
        conn.write(frame(FrameType.RST_STREAM, 0, 1, rst));
        let sums: typeof server.logs = [];
        for (let i = 0; i < 50 && sums.length === 0; i++) {
          await sleep(100);
          sums = server.logs.slice(from).filter((l) => l.msg === "rpc" && l.method === "Sum" && l.peer === `127.0.0.1:${conn.socket.localPort}`);
        }
        expect(sums.map((l) => l.code)).to.deep.equal(["CANCELED"]);
      } finally {
        conn.destroy();
      }
    });

    it("an error with no response headers set is Trailers-Only", async function () {
      const session = http2.connect(server.url);
      try {
        const stream = session.request(grpcHeaders(paths.echo), { endStream: false });
        const answer = answerOf(stream);
        stream.end(message(EchoRequestSchema, { message: "x", sleepMs: 70_000 }));
        const got = await answer;
        expect(got.status).to.equal(String(Code.InvalidArgument));
        expect(got.trailersOnly).to.equal(true);
      } finally {
        session.close();
      }
    });
  });

  describe("limits", function () {
    it(`advertises SETTINGS_MAX_CONCURRENT_STREAMS ${MAX_CONCURRENT_STREAMS} and a header list limit`, async function () {
      const conn = await connectRaw(server.port);
      try {
        conn.write(Buffer.concat([PREFACE, settingsFrame()]));
        const settings = await conn.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0, 2_000);
        const values = new Map<number, number>();
        for (let i = 0; i + 6 <= settings!.payload.length; i += 6) values.set(settings!.payload.readUInt16BE(i), settings!.payload.readUInt32BE(i + 2));
        expect(values.get(0x3)).to.equal(MAX_CONCURRENT_STREAMS);
        expect(values.get(0x6)).to.equal(16_384);
      } finally {
        conn.destroy();
      }
    });

    it("10,000 streams opened on one connection: no more than the limit are taken, the session is ended, the server serves on", async function () {
      const conn = await connectH2(server.port);
      try {
        for (let id = 1, sent = 0; sent < 10_000; id += 2, sent++) {
          if (!(await send(conn, frame(FrameType.HEADERS, Flag.END_HEADERS, id, grpcRequestHeaders(paths.echo))))) break;
        }
        // node:http2 takes MAX_CONCURRENT_STREAMS, refuses the next ones, and ends a
        // session that keeps opening streams past the limit.
        const closedAfter = await Promise.race([conn.closed, sleep(10_000).then(() => -1)]);
        expect(closedAfter, "the session holding 10,000 streams was not ended").to.be.greaterThan(0);
      } finally {
        conn.destroy();
      }
      await expectServing();
    });

    it("a socket that never speaks is closed within the headers timeout", async function () {
      const conn = await connectRaw(server.port);
      const closedAfter = await Promise.race([conn.closed, sleep(HEADERS_TIMEOUT_MS + 3_000).then(() => -1)]);
      conn.destroy();
      expect(closedAfter).to.be.within(HEADERS_TIMEOUT_MS - 100, HEADERS_TIMEOUT_MS + 2_000);
      await expectServing();
    });

    it("slowloris on the preface, one byte every 200 ms, is closed within the headers timeout", async function () {
      const conn = await connectRaw(server.port);
      for (let i = 0; i < PREFACE.length && !conn.socket.destroyed; i++) {
        conn.write(PREFACE.subarray(i, i + 1));
        await sleep(200);
      }
      const closedAfter = await Promise.race([conn.closed, sleep(3_000).then(() => -1)]);
      conn.destroy();
      expect(closedAfter).to.be.within(HEADERS_TIMEOUT_MS - 100, HEADERS_TIMEOUT_MS + 2_000);
    });

    it("a preface split across TCP chunks shorter than itself is still HTTP/2", async function () {
      const conn = await connectRaw(server.port);
      try {
        conn.socket.setNoDelay(true);
        conn.write(PREFACE.subarray(0, 3));
        await sleep(50);
        conn.write(PREFACE.subarray(3, 10));
        await sleep(50);
        conn.write(Buffer.concat([PREFACE.subarray(10), settingsFrame()]));
        const settings = await conn.waitFor((f) => f.type === FrameType.SETTINGS, 2_000);
        expect(settings, "the server did not answer as HTTP/2").to.not.equal(undefined);
      } finally {
        conn.destroy();
      }
    });

    it("HTTP/2 request headers never finished (HEADERS without END_HEADERS) are cut within the headers timeout", async function () {
      const conn = await connectH2(server.port);
      conn.write(frame(FrameType.HEADERS, 0, 1, grpcRequestHeaders(paths.echo)));
      const closedAfter = await Promise.race([conn.closed, sleep(HEADERS_TIMEOUT_MS + 4_000).then(() => -1)]);
      conn.destroy();
      expect(closedAfter, "still open").to.be.greaterThan(0).and.lessThan(HEADERS_TIMEOUT_MS + 3_000);
      await expectServing();
    });

    it("slowloris on HTTP/1.1, one header line every 200 ms, is closed within the headers timeout", async function () {
      const socket = net.connect(server.port, "127.0.0.1");
      socket.on("error", () => undefined);
      let response = "";
      socket.on("data", (d: Buffer) => (response += d.toString("latin1")));
      const started = performance.now();
      const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - started)));
      socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      for (let i = 0; i < 40 && !socket.destroyed && socket.writable; i++) {
        socket.write(`X-Slow-${i}: y\r\n`);
        await sleep(200);
      }
      const closedAfter = await Promise.race([closed, sleep(2_000).then(() => -1)]);
      socket.destroy();
      expect(closedAfter, "still open").to.be.greaterThan(0).and.lessThan(HEADERS_TIMEOUT_MS + 3_000);
      expect(response).to.match(/^(HTTP\/1.1 408|$)/);
      await expectServing();
    });

    it("an idle HTTP/2 session gets GOAWAY after the idle timeout", async function () {
      const session = http2.connect(server.url);
      session.on("error", () => undefined);
      const started = performance.now();
      const goaway = new Promise<number>((resolve) => session.once("goaway", () => resolve(performance.now() - started)));
      const stream = session.request(grpcHeaders(paths.echo), { endStream: false });
      const answer = answerOf(stream);
      stream.end(message(EchoRequestSchema, { message: "once" }));
      expect((await answer).status).to.equal("0");
      const after = await Promise.race([goaway, sleep(IDLE_TIMEOUT_MS + 3_000).then(() => -1)]);
      session.destroy();
      expect(after, "no GOAWAY").to.be.within(IDLE_TIMEOUT_MS - 100, IDLE_TIMEOUT_MS + 2_500);
    });

    it("a unary body that stops arriving ends with DEADLINE_EXCEEDED within the call's deadline", async function () {
      const session = http2.connect(server.url);
      try {
        const started = performance.now();
        const stream = session.request(grpcHeaders(paths.echo, { "grpc-timeout": "800m" }), { endStream: false });
        const answer = answerOf(stream);
        stream.write(envelope(Buffer.alloc(4), 50));
        const got = await answer;
        expect(got.status).to.equal(String(Code.DeadlineExceeded));
        expect(performance.now() - started).to.be.lessThan(800 + 1_500);
      } finally {
        session.close();
      }
    });

    it(`a body that stops arriving on a method with no deadline ends within REQUEST_BODY_TIMEOUT_MS (${REQUEST_BODY_TIMEOUT_MS} ms)`, async function () {
      const session = http2.connect(server.url);
      try {
        const started = performance.now();
        const stream = session.request(grpcHeaders(paths.check), { endStream: false });
        const answer = answerOf(stream);
        stream.write(envelope(Buffer.alloc(2), 40));
        const got = await answer;
        expect(got.status).to.equal(String(Code.DeadlineExceeded));
        expect(performance.now() - started).to.be.within(REQUEST_BODY_TIMEOUT_MS - 100, REQUEST_BODY_TIMEOUT_MS + 1_500);
      } finally {
        session.close();
      }
    });

    it("a ping flood gets GOAWAY ENHANCE_YOUR_CALM, and a few pings do not", async function () {
      const calm = await connectH2(server.port);
      try {
        for (let i = 0; i < 3; i++) calm.write(pingFrame(i));
        await sleep(300);
        expect(calm.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0)).to.have.length(3);
        expect(calm.frames.find((f) => f.type === FrameType.GOAWAY)).to.equal(undefined);
      } finally {
        calm.destroy();
      }
      const flood = await connectH2(server.port);
      try {
        for (let i = 0; i < 1000 && !flood.socket.destroyed; i++) flood.write(pingFrame(i));
        const goaway = await flood.waitFor((f) => f.type === FrameType.GOAWAY, 5_000);
        expect(goaway, "no GOAWAY").to.not.equal(undefined);
        expect(goawayCode(goaway!)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        expect(goaway!.payload.subarray(8).toString()).to.equal("too_many_pings");
      } finally {
        flood.destroy();
      }
      await expectServing();
    });

    it("pings spread over many TCP segments still earn strikes; pings while data flows do not", async function () {
      const spread = await connectH2(server.port);
      try {
        spread.socket.setNoDelay(true);
        for (let i = 0; i < 20 && !spread.socket.destroyed; i++) {
          spread.write(pingFrame(i));
          await sleep(10);
        }
        const goaway = await spread.waitFor((f) => f.type === FrameType.GOAWAY, 3_000);
        expect(goaway, "a slow ping flood was never stopped").to.not.equal(undefined);
        expect(goawayCode(goaway!)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } finally {
        spread.destroy();
      }
      // A client that pings as it receives (grpc-go sizes its window so) is no abuser.
      const session = http2.connect(server.url);
      session.on("error", () => undefined);
      try {
        let goaway = false;
        session.on("goaway", () => (goaway = true));
        const stream = session.request(grpcHeaders(paths.count), { endStream: false });
        const answer = answerOf(stream);
        stream.on("data", () => session.ping(() => undefined));
        stream.end(message(CountRequestSchema, { n: 30, intervalMs: 10 }));
        const got = await answer;
        expect(got.status).to.equal("0");
        expect(got.dataFrames).to.be.at.least(30);
        expect(goaway).to.equal(false);
      } finally {
        session.close();
      }
    });

    it("a SETTINGS flood ends that connection only", async function () {
      const conn = await connectH2(server.port);
      const closed = conn.closed;
      for (let i = 0; i < 20_000; i++) {
        if (!(await send(conn, settingsFrame([[0x4, 65_535 + (i % 7)]])))) break;
      }
      const after = await Promise.race([closed, sleep(10_000).then(() => -1)]);
      conn.destroy();
      expect(after, "the flooding connection was never ended").to.be.greaterThan(0);
      await expectServing();
    });

    it("random bytes after the preface end that connection only", async function () {
      let seed = 0x5eed;
      const random = Buffer.alloc(64 * 1024);
      for (let i = 0; i < random.length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        random[i] = seed >>> 24;
      }
      const conn = await connectRaw(server.port);
      conn.write(Buffer.concat([PREFACE, settingsFrame(), random]));
      const after = await Promise.race([conn.closed, sleep(5_000).then(() => -1)]);
      conn.destroy();
      expect(after, "still open").to.be.greaterThan(0);
      await expectServing();
    });

    it("oversized HTTP/2 headers are refused; the connection's other calls and the server go on", async function () {
      const session = http2.connect(server.url, { maxSendHeaderBlockLength: 1024 * 1024 });
      session.on("error", () => undefined);
      try {
        const big = session.request(grpcHeaders(paths.echo, { "x-big": "a".repeat(100_000) }), { endStream: false });
        const answer = answerOf(big, 5_000);
        big.end(message(EchoRequestSchema, { message: "big" }));
        const got = await answer;
        expect(got.status, "a call with 100 KB of headers was served").to.not.equal("0");
      } finally {
        session.destroy();
      }
      await expectServing();
    });

    it("oversized HTTP/1.1 headers answer 431", async function () {
      const socket = net.connect(server.port, "127.0.0.1");
      socket.on("error", () => undefined);
      let response = "";
      socket.on("data", (d: Buffer) => (response += d.toString("latin1")));
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`);
      await Promise.race([closed, sleep(3_000)]);
      socket.destroy();
      expect(response).to.match(/^HTTP\/1.1 431/);
      await expectServing();
    });

    it("an unbounded service name in Health/Check comes back bounded, and the connection keeps serving", async function () {
      const client = grpcClient(Health, server.url);
      const err = await errorOf(client.check({ service: "x".repeat(100_000) }));
      expect(err.code).to.equal(Code.NotFound);
      expect(err.rawMessage.length).to.be.lessThan(300);
      expect((await client.check({ service: "" })).status).to.equal(1);
    });
  });

  describe("every refusal is visible", function () {
    it("counts refusals by reason, and rate-limits their log lines", async function () {
      const before = await metricSum("rpc_server_refused_total", 'reason="unknown_method"');
      const linesBefore = server.logs.filter((l) => l.msg === "refused").length;
      const session = http2.connect(server.url);
      try {
        const answers: Array<Promise<Answer>> = [];
        for (let i = 0; i < 500; i++) {
          const stream = session.request(grpcHeaders(`/no.such.Service/M${i}`), { endStream: false });
          answers.push(answerOf(stream));
          stream.end(message(HealthCheckRequestSchema, {}));
        }
        const got = await Promise.all(answers);
        expect(got.every((a) => a.status === String(Code.Unimplemented))).to.equal(true);
      } finally {
        session.close();
      }
      const after = await metricSum("rpc_server_refused_total", 'reason="unknown_method"');
      expect(after - before).to.equal(500);
      await sleep(400);
      const flood = server.logs.filter((l) => l.msg === "refused").slice(linesBefore);
      expect(flood.length, "500 refusals wrote a line each").to.be.lessThan(60);
      // Once the budget refills, the next line says how many were left out.
      const session2 = http2.connect(server.url);
      try {
        const stream = session2.request(grpcHeaders("/no.such.Service/Again"), { endStream: false });
        const answer = answerOf(stream);
        stream.end(message(HealthCheckRequestSchema, {}));
        await answer;
      } finally {
        session2.close();
      }
      const next = await server.waitForLog((l) => l.msg === "refused" && l.path === "/no.such.Service/Again", 3_000);
      expect(next).to.include({ reason: "unknown_method" });
      // Every refusal is accounted for: a line of its own, or counted in the next line's suppressed_before.
      const lines = server.logs.filter((l) => l.msg === "refused").slice(linesBefore);
      const accounted = lines.reduce((n, l) => n + 1 + Number(l.suppressed_before ?? 0), 0);
      expect(accounted).to.be.at.least(501);
    });

    it("counts a malformed message under decoding and an oversized one under size", async function () {
      const decodingBefore = await metricSum("rpc_server_refused_total", 'reason="decoding"');
      const sizeBefore = await metricSum("rpc_server_refused_total", 'reason="size"');
      const session = http2.connect(server.url);
      try {
        const bad = session.request(grpcHeaders(paths.echo), { endStream: false });
        const badAnswer = answerOf(bad);
        bad.end(envelope(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
        expect((await badAnswer).status).to.equal(String(Code.InvalidArgument));
        const big = session.request(grpcHeaders(paths.echo), { endStream: false });
        const bigAnswer = answerOf(big);
        big.write(envelope(Buffer.alloc(0), 64 * 1024 * 1024));
        expect((await bigAnswer).status).to.equal(String(Code.ResourceExhausted));
      } finally {
        session.close();
      }
      expect(await metricSum("rpc_server_refused_total", 'reason="decoding"')).to.equal(decodingBefore + 1);
      expect(await metricSum("rpc_server_refused_total", 'reason="size"')).to.equal(sizeBefore + 1);
    });
  });
});
