// One call turns typed service implementations into a running server: gRPC
// over h2c (the lean path), Connect and gRPC-Web (connect-node), health,
// reflection, /metrics and /healthz, all on one port, with a graceful drain.
import * as http2 from "node:http2";
import * as net from "node:net";
import type { ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";
import type { DescService, Registry } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { createTokenAuthority } from "./auth.ts";
import { KEYS_HOWTO, KeyConfigError } from "./token-keys.ts";
import { connectionLimitsFromEnv, createHttp1Server, guardSession, http2Settings, refuseOversizedHeaders, sniffProtocol } from "./connection-limits.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import type { TokenAuthority } from "./auth.ts";
import { countConnectRefusals } from "./connect-refusals.ts";
import { createGrpcStreamHandler, isGrpcRequest } from "./grpc-http2-path.ts";
import type { GrpcRoute } from "./grpc-http2-path.ts";
import { createHealthRegistry, ServingStatus } from "./health.ts";
import type { HealthRegistry } from "./health.ts";
import { Health } from "../gen/health/v1/health_pb.js";
import { createReflection, ReflectionV1, ReflectionV1Alpha } from "./reflection.ts";
import { createLifecycle, peerKey, reachedPipelineKey, wrapServiceImpl } from "./rpc-pipeline.ts";
import type { Lifecycle } from "./rpc-pipeline.ts";
import { createLogger } from "./telemetry/logger.ts";
import type { Logger } from "./telemetry/logger.ts";
import { createRpcMetrics } from "./telemetry/metrics.ts";
import type { RpcMetrics } from "./telemetry/metrics.ts";
import { createRefusalReporter } from "./telemetry/refusals.ts";
import { installTracing } from "./telemetry/tracing.ts";

type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
type NodeServerRequest = Parameters<NodeHandler>[0];
type NodeServerResponse = Parameters<NodeHandler>[1];

export type HttpFallback = (req: NodeServerRequest, res: NodeServerResponse) => boolean;

export interface ServerOptions {
  /** Port to listen on; 0 picks a free one. Default PORT, then 8080. */
  port?: number;
  /** Address to bind. Default HOST, then "127.0.0.1". Beyond loopback only with configured (not development) token keys. */
  host?: string;
  logger?: Logger;
  tokens?: TokenAuthority;
  metrics?: RpcMetrics;
  /** Largest request message, in bytes (after decompression). Default MAX_MESSAGE_BYTES, then 4 MiB, as in gRPC's own servers. */
  maxMessageBytes?: number;
  /** Bounds on connections and streams; each defaults to its environment variable, then a safe value (README "Limits"). */
  limits?: Partial<ConnectionLimits>;
  /** Types the JSON codecs resolve google.protobuf.Any and extensions with (Connect JSON and application/grpc+json). */
  jsonRegistry?: Registry;
  /** How long a drain waits for in-flight calls before closing anyway. Default DRAIN_TIMEOUT_MS, then 10000. */
  drainTimeoutMs?: number;
  /** Serve server reflection. Default true. */
  reflection?: boolean;
  /** Plain HTTP requests other than /metrics and /healthz; return false for 404. */
  fallback?: HttpFallback;
}

export interface ShopServer {
  readonly logger: Logger;
  readonly tokens: TokenAuthority;
  readonly metrics: RpcMetrics;
  readonly health: HealthRegistry;
  readonly lifecycle: Lifecycle;
  /** Adds a service; owner is the logical service name ("users") used in logs and traces. */
  register<S extends DescService>(owner: string, service: S, impl: Partial<ServiceImpl<S>>): void;
  /** The wrapped implementation behind a path, for in-process clients. */
  route(path: string): GrpcRoute | undefined;
  services(): DescService[];
  listen(): Promise<{ host: string; port: number }>;
  /** Health NOT_SERVING, refuse new calls, let in-flight ones finish (bounded), close. */
  drain(): Promise<void>;
}

/** 127.0.0.0/8, ::1 and "localhost": addresses nobody else can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::ffff:127.0.0.1";
}

export function createServer(options: ServerOptions = {}): ShopServer {
  installTracing();
  const logger = options.logger ?? createLogger();
  const tokens = options.tokens ?? createTokenAuthority();
  const metrics = options.metrics ?? createRpcMetrics();
  const health = createHealthRegistry();
  const lifecycle = createLifecycle();
  const maxMessageBytes = options.maxMessageBytes ?? Number(process.env.MAX_MESSAGE_BYTES ?? 4 * 1024 * 1024);
  const limits = connectionLimitsFromEnv(options.limits);
  const refusals = createRefusalReporter({ logger, metrics });
  const drainTimeoutMs = options.drainTimeoutMs ?? Number(process.env.DRAIN_TIMEOUT_MS ?? 10_000);
  const routes = new Map<string, GrpcRoute>();
  const registered: Array<{ service: DescService; impl: ServiceImpl<DescService> }> = [];
  let frontServer: net.Server | undefined;

  const server: ShopServer = {
    logger,
    tokens,
    metrics,
    health,
    lifecycle,
    register(owner, service, impl) {
      if (frontServer) throw new Error(`register ${service.typeName} before listen()`);
      const wrapped = wrapServiceImpl(service, impl, { serviceName: owner, logger, metrics, tokens, lifecycle });
      registered.push({ service, impl: wrapped as ServiceImpl<DescService> });
      for (const method of service.methods) {
        const fn = (wrapped as Record<string, GrpcRoute["impl"]>)[method.localName];
        routes.set(`/${service.typeName}/${method.name}`, { service, method, impl: fn });
      }
      if (!service.typeName.startsWith("grpc.")) health.set(service.typeName, ServingStatus.SERVING);
    },
    route: (path) => routes.get(path),
    services: () => registered.map((r) => r.service),
    async listen() {
      server.register("platform", Health, health.impl);
      if (options.reflection ?? true) {
        const reflection = createReflection(() => server.services());
        server.register("platform", ReflectionV1, reflection.v1);
        server.register("platform", ReflectionV1Alpha, reflection.v1alpha);
      }
      const connectHandler = connectNodeAdapter({
        // h2c gRPC never reaches connect-node: the lean path takes it first.
        grpc: false,
        routes(router) {
          for (const r of registered) router.service(r.service, r.impl);
          countConnectRefusals(router, refusals);
        },
        readMaxBytes: maxMessageBytes,
        jsonOptions: options.jsonRegistry ? { registry: options.jsonRegistry } : undefined,
        contextValues: (req) =>
          createContextValues().set(peerKey, `${req.socket.remoteAddress}:${req.socket.remotePort}`).set(reachedPipelineKey, { reached: false }),
        fallback(req, res) {
          if (!handlePlainHttp(req, res)) {
            res.writeHead(404, { "content-type": "text/plain" });
            res.end("not found\n");
          }
        },
      });
      const handleGrpc = createGrpcStreamHandler({
        lookup: (p) => routes.get(p),
        maxMessageBytes,
        requestBodyTimeoutMs: limits.requestBodyTimeoutMs,
        jsonRegistry: options.jsonRegistry,
        refusals,
        onDefect: (err, fields) => logger.error({ err, ...fields }, "transport defect: stream ended"),
      });
      const h2 = http2.createServer(http2Settings(limits), connectHandler);
      // node:http2 creates the compatibility request/response pair for every
      // stream before emitting "request". gRPC streams are taken here, one
      // step earlier, so the hot path never pays for those objects.
      const emit = h2.emit.bind(h2) as (event: string | symbol, ...args: unknown[]) => boolean;
      h2.emit = ((event: string | symbol, ...args: unknown[]) => {
        if (event === "stream") {
          const [stream, headers] = args as [http2.ServerHttp2Stream, http2.IncomingHttpHeaders];
          if (refuseOversizedHeaders(stream, headers, limits, refusals)) return true;
          if (isGrpcRequest(headers)) {
            handleGrpc(stream, headers);
            return true;
          }
        }
        return emit(event, ...args);
      }) as typeof h2.emit;
      h2.on("session", (session: ServerHttp2Session) => {
        sessions.add(session);
        session.once("close", () => sessions.delete(session));
        guardSession(session, limits, refusals);
      });
      h2.on("sessionError", () => undefined);
      const h1 = createHttp1Server(limits, connectHandler);
      // Cleartext HTTP/2 (gRPC, grpcurl, Envoy) and HTTP/1.1 (browsers, curl)
      // share one port: the first bytes tell them apart, since every h2c
      // connection opens with the preface "PRI * HTTP/2.0".
      const s = net.createServer((socket) => {
        sockets.add(socket);
        // A connection reset before a protocol owns the socket must not be an uncaught error.
        socket.on("error", () => undefined);
        socket.once("close", () => sockets.delete(socket));
        sniffProtocol(socket, limits, refusals, (protocol) => {
          if (protocol === "h2") {
            h2.emit("connection", socket);
          } else {
            h1.emit("connection", socket);
            socket.resume();
          }
        });
      });
      frontServer = s;
      const port = options.port ?? Number(process.env.PORT ?? 8080);
      const host = options.host || process.env.HOST || "127.0.0.1";
      if (tokens.development && !isLoopback(host)) {
        // Fail closed: development keys sit unprotected on a developer's disk.
        throw new KeyConfigError(`refusing to listen on ${host} with development token keys (${tokens.keyOrigin}): ${KEYS_HOWTO}; or bind 127.0.0.1`);
      }
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, host, () => {
          s.off("error", reject);
          resolve();
        });
      });
      const address = s.address();
      return { host, port: typeof address === "object" && address ? address.port : port };
    },
    async drain() {
      health.setAll(ServingStatus.NOT_SERVING);
      lifecycle.startDrain();
      logger.info({ in_flight: lifecycle.inFlight, drain_timeout_ms: drainTimeoutMs }, "draining");
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), drainTimeoutMs)));
      const finished = await Promise.race([lifecycle.idle().then(() => true), bounded]);
      clearTimeout(timer);
      if (!finished) logger.warn({ in_flight: lifecycle.inFlight }, "drain timeout: closing with calls in flight");
      await closeServer();
      logger.info("stopped");
    },
  };

  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();

  async function closeServer(): Promise<void> {
    const s = frontServer;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const session of sessions) session.close();
    // Sessions get a moment to flush their GOAWAY; then anything left is cut.
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const socket of sockets) socket.destroy();
    await closed;
  }

  function handlePlainHttp(req: NodeServerRequest, res: NodeServerResponse): boolean {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          logger.error({ err }, "metrics collection failed");
          res.writeHead(500);
          res.end();
        },
      );
      return true;
    }
    if (req.method === "GET" && path === "/healthz") {
      const serving = health.get("") === ServingStatus.SERVING;
      res.writeHead(serving ? 200 : 503, { "content-type": "text/plain" });
      res.end(serving ? "SERVING\n" : "NOT_SERVING\n");
      return true;
    }
    return options.fallback?.(req, res) ?? false;
  }

  return server;
}

/**
 * On SIGTERM or SIGINT: run stop (for a server, its drain), then exit 0; exit 1
 * if stop fails. A second signal exits at once.
 */
export function exitOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, "shutting down");
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
