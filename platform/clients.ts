// Typed clients for service-to-service calls. A service asks for a client by
// service descriptor and never learns how the call travels: in-process when
// the target runs in the same process, gRPC over HTTP/2 otherwise (in the
// mesh, to its own Envoy sidecar). Every call gets the same policy: the
// remaining deadline of the call being handled, W3C trace context, a client
// span, client metrics and a bearer token. Given the topology, the factory
// refuses, when the client is asked for (a module's start), a client for a
// service topology.json does not let the caller call: embedded as in the
// mesh, where the caller's sidecar would refuse the call itself.
import { clone, create, isMessage } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescMethodStreaming, DescMethodUnary, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, createHandlerContext } from "@connectrpc/connect";
import type { Client, ContextValues, StreamResponse, Transport, UnaryResponse } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { TokenAuthority } from "./auth.ts";
import { currentScope, remainingBudgetMs } from "./call-scope.ts";
import { contractOf } from "./contract.ts";
import type { GrpcRoute } from "./grpc-http2-path.ts";
import { callRefusal } from "./ops/topology.ts";
import type { Topology } from "./ops/topology.ts";
import { codeName, peerKey } from "./rpc-pipeline.ts";
import type { RpcMetrics } from "./telemetry/metrics.ts";
import { injectContext, tracer } from "./telemetry/tracing.ts";

/** How calls to a service travel. */
export type Route = { kind: "in-process"; lookup: (path: string) => GrpcRoute | undefined } | { kind: "grpc"; baseUrl: string };

export interface ClientFactoryOptions {
  /** The calling service's name: it signs its service token with it. */
  caller: string;
  tokens: TokenAuthority;
  metrics?: RpcMetrics;
  /** Where each target service is reached. */
  routeFor: (service: DescService) => Route;
  /**
   * When set, client() throws for a service this topology does not let the
   * caller call ("orders may not call users: topology.json lets it call
   * catalog"); the platform's own services (health, reflection, mesh.v1) are
   * always allowed. Default: no check (tests of the transport alone). The
   * shop's runner always passes topology.json.
   */
  topology?: Topology;
}

/**
 * How many times the platform's client sends one call: once. It never
 * retries; the proxies retry, and only what the contract says is safe to
 * repeat (envoy/policy.ts). The contracts check multiplies this into every
 * hop of a path's retry amplification.
 */
export const CLIENT_ATTEMPTS = 1;

export interface ClientFactory {
  client<S extends DescService>(service: S): Client<S>;
}

export function createClientFactory(options: ClientFactoryOptions): ClientFactory {
  const remote = new Map<string, Transport>();
  const transportFor = (service: DescService): Transport => {
    const route = options.routeFor(service);
    if (route.kind === "in-process") return createInProcessTransport(route.lookup, options.caller);
    let t = remote.get(route.baseUrl);
    if (!t) {
      t = createGrpcTransport({ baseUrl: route.baseUrl });
      remote.set(route.baseUrl, t);
    }
    return t;
  };
  const clients = new Map<DescService, unknown>();
  return {
    client<S extends DescService>(service: S): Client<S> {
      let c = clients.get(service) as Client<S> | undefined;
      if (!c) {
        const refusal = options.topology && callRefusal(options.topology, options.caller, service.typeName);
        if (refusal) throw new Error(refusal);
        // The route is decided at the first call, not here: a module may ask
        // for a client while the services of later modules are still being
        // registered.
        let resolved: Transport | undefined;
        const route = () => (resolved ??= transportFor(service));
        const lazy: Transport = {
          unary: (...args) => route().unary(...args),
          stream: (...args) => route().stream(...args),
        };
        c = createClient(service, withCallPolicy(lazy, options));
        clients.set(service, c);
      }
      return c;
    },
  };
}

/**
 * Applies the platform's call policy around any transport. The timeout sent is
 * the smallest of what the caller asked, what is left of the current call's
 * budget and the contract's default; a spent budget fails here with
 * DEADLINE_EXCEEDED and nothing is sent.
 */
export function withCallPolicy(inner: Transport, options: Pick<ClientFactoryOptions, "caller" | "tokens" | "metrics">): Transport {
  async function prepare(method: DescMethod, timeoutMs: number | undefined, header: HeadersInit | undefined) {
    const contract = contractOf(method);
    const remaining = remainingBudgetMs();
    if (remaining !== undefined && remaining <= 0) {
      throw new ConnectError(`no deadline budget left to call ${contract.path}`, Code.DeadlineExceeded);
    }
    let timeout = timeoutMs ?? contract.deadlineMs;
    if (remaining !== undefined) timeout = timeout === undefined ? remaining : Math.min(timeout, remaining);
    const headers = new Headers(header);
    if (!headers.has("authorization")) {
      const scope = currentScope();
      // A user's own token travels with calls made on their behalf; otherwise
      // the caller speaks as itself.
      const forwarded = scope?.principal?.kind === "user" ? scope.authorization : undefined;
      headers.set("authorization", forwarded ?? `Bearer ${await options.tokens.issueServiceToken(options.caller)}`);
    }
    const span = tracer().startSpan(contract.path.slice(1), {
      kind: SpanKind.CLIENT,
      attributes: { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name, "shop.caller": options.caller },
    });
    const spanContext = trace.setSpan(context.active(), span);
    injectContext(headers, spanContext);
    const endMetrics = options.metrics?.startClient(method.parent.typeName, method.name);
    const end = (err: unknown) => {
      const code = err === undefined ? "OK" : codeName(ConnectError.from(err).code);
      if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.end();
      endMetrics?.(code);
    };
    return { timeout, headers, spanContext, end };
  }

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const call = await prepare(method, timeoutMs, header);
      try {
        const res = await context.with(call.spanContext, () => inner.unary(method, signal, call.timeout, call.headers, input, contextValues));
        call.end(undefined);
        return res;
      } catch (err) {
        call.end(err);
        throw err;
      }
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const call = await prepare(method, timeoutMs, header);
      let res: StreamResponse<I, O>;
      try {
        res = await context.with(call.spanContext, () => inner.stream(method, signal, call.timeout, call.headers, input, contextValues));
      } catch (err) {
        call.end(err);
        throw err;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            for await (const m of messages) yield m;
            call.end(undefined);
          } catch (err) {
            call.end(err);
            throw err;
          }
        })(),
      };
    },
  };
}

/**
 * Calls the wrapped implementation registered in this process, through the
 * same pipeline a network call takes (auth, validation, deadline, logs,
 * metrics, tracing), without serialising. Messages are copied at the boundary
 * so neither side can change the other's.
 */
export function createInProcessTransport(lookup: (path: string) => GrpcRoute | undefined, caller: string): Transport {
  function contextFor(method: DescMethod, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: HeadersInit | undefined) {
    const path = `/${method.parent.typeName}/${method.name}`;
    const route = lookup(path);
    if (!route) throw new ConnectError(`${path} is not served in this process`, Code.Unimplemented);
    const ctx = createHandlerContext({
      service: method.parent,
      method,
      protocolName: "in-process",
      requestMethod: "POST",
      url: path,
      timeoutMs,
      requestSignal: signal,
      requestHeader: header,
      contextValues: createContextValues().set(peerKey, `in-process:${caller}`),
    });
    return { route, ctx };
  }
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      const { route, ctx } = contextFor(method, signal, timeoutMs, header);
      const output = await route.impl(copyIn(method.input, input), ctx);
      return {
        stream: false,
        service: method.parent,
        method,
        header: ctx.responseHeader,
        trailer: ctx.responseTrailer,
        message: copyOut(method.output, output),
      };
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
    ): Promise<StreamResponse<I, O>> {
      const { route, ctx } = contextFor(method, signal, timeoutMs, header);
      let request: unknown;
      if (method.methodKind === "server_streaming") {
        for await (const first of input) {
          request = copyIn(method.input, first);
          break;
        }
      } else {
        request = (async function* () {
          for await (const m of input) yield copyIn(method.input, m);
        })();
      }
      const output = route.impl(request, ctx) as AsyncIterable<unknown>;
      return {
        stream: true,
        service: method.parent,
        method,
        header: ctx.responseHeader,
        trailer: ctx.responseTrailer,
        message: (async function* () {
          for await (const m of output) yield copyOut(method.output, m);
        })(),
      };
    },
  };
}

function copyIn<D extends DescMessage>(schema: D, value: MessageInitShape<D>): MessageShape<D> {
  return isMessage(value, schema) ? clone(schema, value) : create(schema, value);
}

function copyOut<D extends DescMessage>(schema: D, value: unknown): MessageShape<D> {
  return isMessage(value, schema) ? clone(schema, value) : create(schema, value as MessageInitShape<D>);
}
