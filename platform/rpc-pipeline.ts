// The one place every RPC passes through, whatever carried it (the lean gRPC
// path, connect-node for Connect and gRPC-Web, or an in-process call): drain
// check, trace context, deadline, authentication, validation, the handler,
// error mapping, one log line, metrics. Transports only frame bytes.
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Context as OtelContext, Span } from "@opentelemetry/api";
import type { IncomingHttpHeaders } from "node:http2";
import type { DescMethod, DescService, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { authorize, authorizeServicePeer } from "./auth.ts";
import { peerService, XFCC_HEADER } from "./peer-identity.ts";
import type { PeerIdentityOptions } from "./peer-identity.ts";
import type { Principal, TokenAuthority } from "./auth.ts";
import { contextWithScope } from "./call-scope.ts";
import type { CallScope } from "./call-scope.ts";
import { contractOf } from "./contract.ts";
import { redactForLog } from "./redaction.ts";
import type { Logger } from "./telemetry/logger.ts";
import type { RpcMetrics } from "./telemetry/metrics.ts";
import { extractContext, extractContextFromRaw, spanIds, tracer } from "./telemetry/tracing.ts";
import { assertValid } from "./validation.ts";

/** Set by transports: who is on the other end ("127.0.0.1:53211", "in-process:orders"). */
export const peerKey = createContextKey<string>("", { description: "peer address" });

/**
 * Set by the lean gRPC path: the request's headers as node:http2 parsed them,
 * so the pipeline reads authorization and traceparent without building a
 * Headers object (ctx.requestHeader is then built only if a handler asks).
 */
export const rawHeadersKey = createContextKey<IncomingHttpHeaders | undefined>(undefined, { description: "raw request headers" });

function requestHeaderValue(ctx: HandlerContext, name: string): string | undefined {
  const raw = ctx.values.get(rawHeadersKey);
  if (!raw) return ctx.requestHeader.get(name) ?? undefined;
  const value = raw[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Every value of a header, joined as one list: two x-forwarded-client-cert headers read as two elements, not the first. */
function everyHeaderValue(ctx: HandlerContext, name: string): string | undefined {
  const raw = ctx.values.get(rawHeadersKey);
  if (!raw) return ctx.requestHeader.get(name) ?? undefined;
  const value = raw[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** MESH_TRUST_DOMAIN and MESH_SPIFFE_NAMESPACE, as the mesh's certificates name them. */
function peerIdentityFromEnv(): PeerIdentityOptions {
  return { trustDomain: process.env.MESH_TRUST_DOMAIN || undefined, namespace: process.env.MESH_SPIFFE_NAMESPACE || undefined };
}

/**
 * Set by connect-node's transports (Connect, gRPC-Web): the pipeline marks it
 * when a call reaches it, so an error answered before (a body that does not
 * parse, a message over the limit, a compression or content type connect-node
 * refuses) can be counted as a refusal.
 */
export const reachedPipelineKey = createContextKey<{ reached: boolean } | undefined>(undefined, { description: "the call reached the pipeline" });

export interface Lifecycle {
  /** True once draining started: new calls (health aside) answer UNAVAILABLE. */
  refusing: boolean;
  /** Aborts when draining starts: open streams end with UNAVAILABLE so clients reconnect elsewhere. */
  readonly draining: AbortSignal;
  /** Starts the drain: refuse new calls and end open streams. */
  startDrain(): void;
  inFlight: number;
  /** Resolves waiters when inFlight drops to zero. */
  idle(): Promise<void>;
  begin(): void;
  end(): void;
}

export function createLifecycle(): Lifecycle {
  let waiters: Array<() => void> = [];
  const drain = new AbortController();
  const lifecycle: Lifecycle = {
    refusing: false,
    draining: drain.signal,
    startDrain() {
      lifecycle.refusing = true;
      drain.abort(new ConnectError("server is shutting down", Code.Unavailable));
    },
    inFlight: 0,
    idle() {
      if (lifecycle.inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    begin() {
      lifecycle.inFlight++;
    },
    end() {
      lifecycle.inFlight--;
      if (lifecycle.inFlight === 0 && waiters.length > 0) {
        const ready = waiters;
        waiters = [];
        for (const w of ready) w();
      }
    },
  };
  return lifecycle;
}

export interface PipelineOptions {
  /** Logical service name used in logs and scope ("users"). */
  serviceName: string;
  logger: Logger;
  metrics: RpcMetrics;
  tokens: TokenAuthority;
  lifecycle: Lifecycle;
  /** Log request bodies (sensitive fields redacted). Default LOG_BODIES=1, else off. */
  logBodies?: boolean;
  /**
   * Behind the mesh's sidecar: SERVICE-audience methods take the caller's
   * identity from the verified client certificate (auth.ts authorizeServicePeer).
   * Only where the app is reachable through its sidecar alone. Default
   * PEER_IDENTITY=xfcc, else off.
   */
  peerIdentity?: PeerIdentityOptions | false;
}

const HEALTH_SERVICE = "grpc.health.v1.Health";
// Successful calls to these log at debug: probes, tools and the console poll them constantly.
const QUIET_SERVICES = new Set([
  HEALTH_SERVICE,
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "mesh.v1.OpsService",
  "mesh.v1.EventAdminService",
]);

interface CallStart {
  readonly ctx: HandlerContext;
  readonly scope: CallScope;
  readonly otelContext: OtelContext;
  readonly span: Span;
  readonly finish: (error: unknown) => ConnectError | undefined;
}

type AnyImpl = (input: unknown, ctx: HandlerContext) => unknown;

/** Returns an implementation of the same shape with the whole pipeline around each method. */
export function wrapServiceImpl<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: PipelineOptions,
): ServiceImpl<S> {
  const wrapped: Record<string, AnyImpl> = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, AnyImpl | undefined>)[method.localName];
    const bound: AnyImpl =
      handler?.bind(impl) ??
      (() => {
        throw new ConnectError(`${method.parent.typeName}.${method.name} is not served here`, Code.Unimplemented);
      });
    wrapped[method.localName] = wrapMethod(method, bound, options);
  }
  return wrapped as unknown as ServiceImpl<S>;
}

function wrapMethod(method: DescMethod, handler: AnyImpl, options: PipelineOptions): AnyImpl {
  const contract = contractOf(method);
  const serviceTypeName = method.parent.typeName;
  const isHealth = serviceTypeName === HEALTH_SERVICE;
  const quiet = QUIET_SERVICES.has(serviceTypeName);
  const logBodies = options.logBodies ?? process.env.LOG_BODIES === "1";
  const peerIdentity = options.peerIdentity ?? (process.env.PEER_IDENTITY === "xfcc" ? peerIdentityFromEnv() : false);
  const { logger, metrics, lifecycle } = options;
  // The fields every line of this method shares are serialised once, as bindings.
  const rpcLogger = logger.child({ service: serviceTypeName, method: method.name, app: options.serviceName });
  const spanName = contract.path.slice(1);
  const spanOptions = {
    kind: SpanKind.SERVER,
    attributes: { "rpc.system": "grpc", "rpc.service": serviceTypeName, "rpc.method": method.name, "shop.service": options.serviceName },
  };

  function begin(ctx: HandlerContext, input: unknown): CallStart {
    const marker = ctx.values.get(reachedPipelineKey);
    if (marker) marker.reached = true;
    if (lifecycle.refusing && !isHealth) {
      throw new ConnectError("server is shutting down", Code.Unavailable);
    }
    // Health calls are observers, not work: a Health Watch held open by a
    // client-side health checker must not hold up the drain.
    if (!isHealth) lifecycle.begin();
    const endMetrics = metrics.start(serviceTypeName, method.name);
    const started = performance.now();
    const raw = ctx.values.get(rawHeadersKey);
    const parent = raw ? extractContextFromRaw(raw) : extractContext(ctx.requestHeader);
    const span = tracer().startSpan(spanName, spanOptions, parent);
    const timeout = ctx.timeoutMs() ?? contract.deadlineMs;
    const scope: CallScope = {
      deadlineAt: timeout === undefined ? undefined : Date.now() + Math.floor(timeout),
      principal: undefined,
      authorization: requestHeaderValue(ctx, "authorization"),
      serviceName: options.serviceName,
    };
    const finish = (error: unknown): ConnectError | undefined => {
      const mapped = error === undefined ? undefined : toConnectError(error, span, logger, contract.path);
      const code = mapped ? Code[mapped.code] : "OK";
      const grpcCode = mapped ? codeName(mapped.code) : "OK";
      endMetrics(grpcCode);
      if (mapped) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.setAttribute("rpc.grpc.status_code", mapped ? mapped.code : 0);
      span.end();
      if (!isHealth) lifecycle.end();
      const { traceId, spanId } = span.spanContext();
      const line: Record<string, unknown> = {
        code: grpcCode,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        trace_id: traceId,
        span_id: spanId,
        peer: ctx.values.get(peerKey),
      };
      if (mapped) line.message = mapped.rawMessage;
      if (logBodies && input !== undefined && !contract.streaming) {
        line.request = redactForLog(method.input, input as Message);
      }
      if (quiet && !mapped) rpcLogger.debug(line, "rpc");
      else rpcLogger.info(line, "rpc");
      return mapped;
    };
    return { ctx, scope, otelContext: trace.setSpan(parent, span), span, finish };
  }

  /** The call's scope once admitted; synchronous (no promise) when there is no token to verify. */
  function admit(start: CallStart, input: unknown): CallScope | Promise<CallScope> {
    const { deadlineAt, authorization } = start.scope;
    if (deadlineAt !== undefined && deadlineAt <= Date.now()) {
      throw new ConnectError("deadline exceeded before the call started", Code.DeadlineExceeded);
    }
    const admitted = (principal: Principal | undefined): CallScope => {
      if (input !== undefined) assertValid(method.input, input as Message);
      return principal === undefined ? start.scope : { ...start.scope, principal };
    };
    // No token on a public method: nothing to verify, nothing to wait for.
    if (authorization === undefined && contract.audience === "public") return admitted(undefined);
    // In-process calls never crossed a sidecar: the calling service's own token speaks for it.
    if (peerIdentity && contract.audience === "service" && !String(start.ctx.values.get(peerKey)).startsWith("in-process:")) {
      const peer = peerService(everyHeaderValue(start.ctx, XFCC_HEADER), peerIdentity);
      return authorizeServicePeer(options.tokens, authorization ?? null, peer).then(admitted);
    }
    return authorize(options.tokens, contract.audience, authorization ?? null).then(admitted);
  }

  if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
    const takesStream = method.methodKind === "client_streaming";
    return async (input, ctx) => {
      const start = begin(ctx, input);
      try {
        const admitted = admit(start, takesStream ? undefined : input);
        const scope = admitted instanceof Promise ? await admitted : admitted;
        const pending = context.with(contextWithScope(start.otelContext, scope), () => handler(input, ctx)) as Promise<unknown>;
        const result = scope.deadlineAt === undefined ? await pending : await withDeadline(pending, scope.deadlineAt);
        start.finish(undefined);
        return result;
      } catch (err) {
        throw start.finish(abortReason(ctx, err));
      }
    };
  }

  const takesStream = method.methodKind === "bidi_streaming";
  return async function* (input, ctx) {
    const start = begin(ctx, input);
    let failure: unknown;
    let iterator: AsyncIterator<unknown> | undefined;
    let finished = false;
    try {
      const scope = await admit(start, takesStream ? undefined : input);
      const callContext = contextWithScope(start.otelContext, scope);
      const iterable = context.with(callContext, () => handler(input, ctx)) as AsyncIterable<unknown>;
      const it = iterable[Symbol.asyncIterator]();
      iterator = it;
      // Each step runs inside the call's scope: a generator resumes in the
      // async context of whoever calls next(), not of whoever created it.
      for (;;) {
        const step = untilDrain(
          context.with(callContext, () => it.next()),
          isHealth ? undefined : lifecycle.draining,
        );
        const next = scope.deadlineAt === undefined ? await step : await withDeadline(step, scope.deadlineAt);
        if (next.done) {
          finished = true;
          break;
        }
        yield next.value;
      }
    } catch (err) {
      failure = abortReason(ctx, err) ?? new Error("stream failed");
    } finally {
      // Abandoned early (deadline, drain, client gone): let the handler clean up.
      if (iterator && !finished) void Promise.resolve(iterator.return?.()).catch(() => undefined);
      const mapped = start.finish(failure);
      if (mapped) throw mapped;
    }
  } as AnyImpl;
}

/**
 * A handler that honours ctx.signal fails with whatever its API throws on
 * abort (an AbortError, say). That is the deadline or the client's cancel, not
 * a bug: report the signal's reason instead of INTERNAL.
 */
function abortReason(ctx: HandlerContext, err: unknown): unknown {
  if (err instanceof ConnectError || !ctx.signal.aborted) return err;
  return ConnectError.from(ctx.signal.reason);
}

function untilDrain<T>(pending: Promise<T>, draining: AbortSignal | undefined): Promise<T> {
  if (!draining) return pending;
  if (draining.aborted) return Promise.reject(draining.reason);
  return new Promise<T>((resolve, reject) => {
    const onDrain = () => reject(draining.reason);
    draining.addEventListener("abort", onDrain, { once: true });
    pending.then(
      (v) => {
        draining.removeEventListener("abort", onDrain);
        resolve(v);
      },
      (e: unknown) => {
        draining.removeEventListener("abort", onDrain);
        reject(e);
      },
    );
  });
}

/** pending, or DEADLINE_EXCEEDED at deadlineAt; handlers may also answer synchronously. */
function withDeadline<T>(pending: Promise<T> | T, deadlineAt: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ConnectError("deadline exceeded", Code.DeadlineExceeded)), Math.min(Math.max(0, deadlineAt - Date.now()), 2 ** 31 - 1));
    Promise.resolve(pending).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * ConnectErrors carry a code their author chose and pass unchanged. Anything
 * else is a bug: its details and stack go to the log with the trace id, and
 * the caller gets INTERNAL with a generic message and that trace id.
 */
function toConnectError(err: unknown, span: Span, logger: Logger, path: string): ConnectError {
  if (err instanceof ConnectError) return err;
  const { trace_id } = spanIds(span);
  logger.error({ err, trace_id, path }, "unexpected error in handler");
  return new ConnectError(`internal error (trace ${trace_id})`, Code.Internal);
}

const codeNames: Record<number, string> = {};
for (const [name, value] of Object.entries(Code)) {
  if (typeof value === "number") {
    codeNames[value] = name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  }
}

/** The gRPC spelling of a code: "DEADLINE_EXCEEDED". */
export function codeName(code: Code): string {
  return codeNames[code] ?? "UNKNOWN";
}
