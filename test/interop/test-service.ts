// grpc.testing.TestService as the gRPC interop test descriptions ask a server
// to behave, written for this project's platform (connect-es handler shapes,
// served through createServer's pipeline), plus the ORCA pieces the
// orca_per_rpc and orca_oob cases read: a per-call load report in the
// endpoint-load-metrics-bin trailer, and xds.service.orca.v3.OpenRcaService
// streaming the server's out-of-band report.
//
// The schema is not generated code: it comes from the descriptor set that
// tools/bin/grpc-interop-descriptors writes from grpc-go's own grpc_testing
// package (see interop-server.ts), so messages are read and built through the
// registry's descriptors, by field name.
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescService, Registry } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";

export const TEST_SERVICE = "grpc.testing.TestService";
/** Declared in test.proto and never served: the unimplemented_service case expects UNIMPLEMENTED for it. */
export const UNIMPLEMENTED_SERVICE = "grpc.testing.UnimplementedService";
export const ORCA_SERVICE = "xds.service.orca.v3.OpenRcaService";

/** Echoed as a response header (initial metadata), per the custom_metadata case. */
export const ECHO_INITIAL = "x-grpc-test-echo-initial";
/** Echoed as a trailer; a binary header, so its value stays base64 on the way through. */
export const ECHO_TRAILING = "x-grpc-test-echo-trailing-bin";
/** Where a gRPC server puts the per-call ORCA load report (binary xds.data.orca.v3.OrcaLoadReport). */
export const ORCA_TRAILER = "endpoint-load-metrics-bin";

// The fields of grpc/testing/messages.proto this service reads and writes,
// by their protobuf-es local names.
interface Payload {
  type: number;
  body: Uint8Array;
}
interface EchoStatus {
  code: number;
  message: string;
}
interface BoolValue {
  value: boolean;
}
interface TestOrcaReport {
  cpuUtilization: number;
  memoryUtilization: number;
  requestCost: Record<string, number>;
  utilization: Record<string, number>;
}
interface SimpleRequest {
  responseType: number;
  responseSize: number;
  payload?: Payload;
  fillUsername: boolean;
  fillOauthScope: boolean;
  responseCompressed?: BoolValue;
  responseStatus?: EchoStatus;
  expectCompressed?: BoolValue;
  fillServerId: boolean;
  fillGrpclbRouteType: boolean;
  orcaPerQueryReport?: TestOrcaReport;
}
interface ResponseParameters {
  size: number;
  intervalUs: number;
  compressed?: BoolValue;
}
interface StreamingOutputCallRequest {
  responseType: number;
  responseParameters: ResponseParameters[];
  payload?: Payload;
  responseStatus?: EchoStatus;
  orcaOobReport?: TestOrcaReport;
}
interface StreamingInputCallRequest {
  payload?: Payload;
  expectCompressed?: BoolValue;
}
interface OrcaLoadReportRequest {
  reportInterval?: { seconds: bigint; nanos: number };
}
interface OrcaLoadReport {
  cpuUtilization: number;
  memUtilization: number;
  requestCost: Record<string, number>;
  utilization: Record<string, number>;
}

/** grpc.testing.PayloadType: COMPRESSABLE is the only value left in messages.proto. */
const COMPRESSABLE = 0;
/** The largest payload a request may ask for: the interop cases ask for at most 314,159 bytes. */
const MAX_RESPONSE_SIZE = 4 * 1024 * 1024;
/** StreamCoreMetrics' reporting interval when the request names none, and its floor. */
const DEFAULT_REPORT_INTERVAL_MS = 1000;
const MIN_REPORT_INTERVAL_MS = 100;

type Handler = (input: never, ctx: HandlerContext) => unknown;

export interface ServedInterop {
  readonly service: DescService;
  /** Handlers by method local name; a method left out answers UNIMPLEMENTED (the platform's default). */
  readonly impl: Record<string, Handler>;
}

export interface InteropServices {
  readonly testService: ServedInterop;
  readonly orca: ServedInterop;
}

export interface TestServiceOptions {
  /** SimpleResponse.server_id when a request sets fill_server_id. */
  serverId: string;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the interop descriptor set has no ${what}: rebuild tools/bin/grpc-interop-descriptors`);
  return value;
}

export function createInteropServices(registry: Registry, options: TestServiceOptions): InteropServices {
  const testService = need(registry.getService(TEST_SERVICE), TEST_SERVICE);
  const orcaService = need(registry.getService(ORCA_SERVICE), ORCA_SERVICE);
  const loadReport: DescMessage = need(registry.getMessage("xds.data.orca.v3.OrcaLoadReport"), "xds.data.orca.v3.OrcaLoadReport");

  // The server's out-of-band load report: what FullDuplexCall's orca_oob_report
  // last set, what every StreamCoreMetrics stream sends.
  let oobReport: OrcaLoadReport = { cpuUtilization: 0, memUtilization: 0, requestCost: {}, utilization: {} };

  const payload = (type: number, size: number): Payload => {
    if (type !== COMPRESSABLE) throw new ConnectError(`unsupported payload type ${type}`, Code.InvalidArgument);
    if (!Number.isInteger(size) || size < 0 || size > MAX_RESPONSE_SIZE) {
      throw new ConnectError(`response size ${size} is outside 0..${MAX_RESPONSE_SIZE}`, Code.InvalidArgument);
    }
    return { type: COMPRESSABLE, body: new Uint8Array(size) };
  };

  const testImpl: Record<string, Handler> = {
    emptyCall(_req: unknown, ctx: HandlerContext) {
      echoMetadata(ctx);
      return {};
    },
    unaryCall: (req: SimpleRequest, ctx: HandlerContext) => unary(req, ctx),
    // Meant for a caching proxy in front of the server (GET); to the server it is UnaryCall.
    cacheableUnaryCall: (req: SimpleRequest, ctx: HandlerContext) => unary(req, ctx),
    async *streamingOutputCall(req: StreamingOutputCallRequest, ctx: HandlerContext) {
      echoMetadata(ctx);
      failIfAsked(req.responseStatus);
      for (const p of req.responseParameters) {
        await pause(p.intervalUs, ctx.signal);
        yield { payload: payload(req.responseType, p.size) };
      }
    },
    async streamingInputCall(requests: AsyncIterable<StreamingInputCallRequest>, ctx: HandlerContext) {
      echoMetadata(ctx);
      let sum = 0;
      for await (const req of requests) {
        checkCompression(req.expectCompressed, ctx);
        sum += req.payload?.body.length ?? 0;
      }
      return { aggregatedPayloadSize: sum };
    },
    async *fullDuplexCall(requests: AsyncIterable<StreamingOutputCallRequest>, ctx: HandlerContext) {
      echoMetadata(ctx);
      for await (const req of requests) {
        failIfAsked(req.responseStatus);
        if (req.orcaOobReport) oobReport = fromTestReport(req.orcaOobReport);
        for (const p of req.responseParameters) {
          await pause(p.intervalUs, ctx.signal);
          yield { payload: payload(req.responseType, p.size) };
        }
      }
    },
    async *halfDuplexCall(requests: AsyncIterable<StreamingOutputCallRequest>, ctx: HandlerContext) {
      echoMetadata(ctx);
      const buffered: StreamingOutputCallRequest[] = [];
      for await (const req of requests) buffered.push(req);
      for (const req of buffered) {
        failIfAsked(req.responseStatus);
        for (const p of req.responseParameters) {
          await pause(p.intervalUs, ctx.signal);
          yield { payload: payload(req.responseType, p.size) };
        }
      }
    },
    // unimplementedCall is left out on purpose: the unimplemented_method case expects UNIMPLEMENTED.
  };

  function unary(req: SimpleRequest, ctx: HandlerContext) {
    echoMetadata(ctx);
    failIfAsked(req.responseStatus);
    checkCompression(req.expectCompressed, ctx);
    if (req.orcaPerQueryReport) {
      const report = create(loadReport, fromTestReport(req.orcaPerQueryReport) as never);
      ctx.responseTrailer.set(ORCA_TRAILER, Buffer.from(toBinary(loadReport, report)).toString("base64"));
    }
    return {
      payload: payload(req.responseType, req.responseSize),
      serverId: req.fillServerId ? options.serverId : "",
    };
  }

  const orcaImpl: Record<string, Handler> = {
    async *streamCoreMetrics(req: OrcaLoadReportRequest, ctx: HandlerContext) {
      const asked = req.reportInterval ? Number(req.reportInterval.seconds) * 1000 + req.reportInterval.nanos / 1e6 : 0;
      const intervalMs = asked > 0 ? Math.max(asked, MIN_REPORT_INTERVAL_MS) : DEFAULT_REPORT_INTERVAL_MS;
      while (!ctx.signal.aborted) {
        yield oobReport;
        await pause(intervalMs * 1000, ctx.signal);
      }
    },
  };

  return {
    testService: { service: testService, impl: testImpl },
    orca: { service: orcaService, impl: orcaImpl },
  };
}

/** x-grpc-test-echo-initial back as a response header, x-grpc-test-echo-trailing-bin as a trailer. */
function echoMetadata(ctx: HandlerContext): void {
  const initial = ctx.requestHeader.get(ECHO_INITIAL);
  if (initial !== null) ctx.responseHeader.set(ECHO_INITIAL, initial);
  const trailing = ctx.requestHeader.get(ECHO_TRAILING);
  if (trailing !== null) ctx.responseTrailer.set(ECHO_TRAILING, trailing);
}

/** response_status with a non-zero code: the call ends with exactly that code and message. */
function failIfAsked(status: EchoStatus | undefined): void {
  if (status && status.code !== 0) throw new ConnectError(status.message, status.code as Code);
}

/**
 * expect_compressed: the client says whether it compressed the request, and
 * the server must refuse a mismatch with INVALID_ARGUMENT (the compressed
 * cases of the interop descriptions first probe with an uncompressed call that
 * claims otherwise). A handler does not see an envelope's compressed flag,
 * only the call's grpc-encoding header: a call without one (or "identity")
 * cannot carry a compressed message, which is exactly the probe; with gzip
 * the message is taken as compressed. (response_compressed and
 * ResponseParameters.compressed are not honoured: the transport decides
 * whether a response message is compressed, not the handler. grpc-go's
 * interop client has no compression case, so nothing here asks for either.)
 */
function checkCompression(expect: BoolValue | undefined, ctx: HandlerContext): void {
  if (!expect?.value) return;
  const encoding = ctx.requestHeader.get("grpc-encoding");
  if (encoding === null || encoding === "identity") {
    throw new ConnectError("expected a compressed request message; it arrived uncompressed", Code.InvalidArgument);
  }
}

function fromTestReport(r: TestOrcaReport): OrcaLoadReport {
  return { cpuUtilization: r.cpuUtilization, memUtilization: r.memoryUtilization, requestCost: { ...r.requestCost }, utilization: { ...r.utilization } };
}

/** Waits intervalUs microseconds (ResponseParameters.interval_us); a cancelled call stops waiting. */
function pause(intervalUs: number, signal: AbortSignal): Promise<void> {
  if (intervalUs <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, intervalUs / 1000);
    signal.addEventListener("abort", done, { once: true });
  });
}
