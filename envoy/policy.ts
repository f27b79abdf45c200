// The resilience numbers every generated config shares. Per-method numbers
// (deadline, whether a retry is safe) come from the contracts; these are the
// mesh-wide ones, in one place so a drill or a benchmark changes them once.
import type { MethodContract } from "@shop/platform";

/** gRPC conditions an idempotent or read-only call is retried on, besides connection-level failures. */
export const RETRY_ON = [
  // The server did not take the call (draining, overloaded, down) or the
  // proxy could not reach it: repeating it on another replica is safe.
  "unavailable",
  // The connection failed, the stream was refused (HTTP/2 REFUSED_STREAM:
  // never processed) or reset, or a try ran past its per-try timeout.
  "connect-failure",
  "refused-stream",
  "reset",
  // Not retried, on purpose: deadline-exceeded (the caller's budget is spent),
  // resource-exhausted (a quota or a full queue: a retry adds load where there
  // is none to spare), internal and unknown (a bug answers the same twice),
  // cancelled (the caller gave up).
].join(",");

export const RETRY = {
  /** Retries after the first try: three tries in all. */
  numRetries: 2,
  /** Exponential backoff with jitter between tries. */
  baseIntervalMs: 25,
  maxIntervalMs: 250,
  /** A try may use this share of the method's deadline, so a hung replica leaves time for another. */
  perTryShare: 0.5,
  /**
   * How often the previous-hosts predicate may pick again to find a replica
   * not tried yet. Among equally loaded replicas each pick is a coin toss:
   * with two replicas and 3 picks again, a retry still went back to the
   * replica that had just failed 1 time in 16, and a call whose two retries
   * both did so failed (the mesh drills saw it). With 5, 1 in 64. A pick
   * costs nothing.
   */
  hostSelectionAttempts: 5,
} as const;

/**
 * Whether a caller's proxy (the edge, an outbound listener) retries calls of
 * this method: unary ones the contract says are safe to repeat. An inbound
 * listener never retries, so one failure is retried by one proxy only.
 */
export function retriedByProxy(contract: MethodContract): boolean {
  return contract.retrySafe && !contract.streaming;
}

/** Tries a caller's proxy may make of one call of this method. */
export function proxyAttempts(contract: MethodContract): number {
  return retriedByProxy(contract) ? 1 + RETRY.numRetries : 1;
}

/** Route bounds for calls whose contract gives no deadline (health, reflection). */
export const NO_DEADLINE = {
  /** Unary: Envoy's own default, stated so nobody has to know it. */
  unaryTimeoutMs: 15_000,
} as const;

/** Streams (server, client, bidi) have no route timeout: these bound them instead. */
export const STREAM = {
  /** A stream with no message either way for this long is reset. */
  idleTimeoutMs: 60_000,
} as const;

/** The circuit-breaker limits of a caller's cluster; CALLER_LIMITS holds the mesh's. */
export interface CallerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
  readonly retryBudgetPercent: number;
  readonly minRetryConcurrency: number;
}

/**
 * Circuit breakers of a caller's cluster for one upstream service (the edge
 * and each outbound sidecar have their own counters). Finite on purpose: past
 * them a call fails at once with UNAVAILABLE (x-envoy-overloaded) instead of
 * queueing behind an upstream that is already slow.
 */
export const CALLER_LIMITS = {
  maxConnections: 64,
  /** Calls waiting for a connection; HTTP/2 multiplexes, so this queue is short-lived. */
  maxPendingRequests: 64,
  /** Calls in flight to the whole service (all its replicas) from this proxy. */
  maxRequests: 256,
  /** Concurrent retries. Envoy ignores it while the retry budget below is set; it is the cap if the budget goes. */
  maxRetries: 8,
  /**
   * Retries waiting to go out (in their backoff) may be at most this share of
   * the calls in flight... A replica that dies fails every call it had at
   * once, and all of them are safe to retry: with two replicas that is as many
   * retries as there are calls left on the other. At Envoy's 20 % and 3, the
   * replica-kill drill lost calls whenever more than three were in flight on
   * the replica it killed (upstream_rq_retry_overflow).
   */
  retryBudgetPercent: 50,
  /** ...but this many concurrent retries are always allowed (an eighth of maxRequests). */
  minRetryConcurrency: 32,
} as const satisfies CallerLimits;

/** Circuit breakers in front of an instance's own app (its sidecar's inbound side), for its unary calls. */
export const APP_LIMITS = {
  maxConnections: 16,
  maxPendingRequests: 128,
  maxRequests: 512,
} as const;

// ---------------------------------------------------------------- budgets
//
// Envoy's max_requests counts open streams: a WatchOrder stream holds its
// slot for as long as it lasts (up to its 300 s deadline), a unary call for
// milliseconds. On one cluster, 256 open streams used up the budget and every
// unary call of that service failed with UNAVAILABLE "overflow". So every
// proxy splits each upstream into budgets, each a cluster of its own (same
// endpoints, health checks and outlier detection; its own connection pool
// and circuit breakers):
//
//   calls           unary methods                            <service>         local_app
//   streams         streaming methods a caller must sign in  <service>-streams local_app_streams
//                   for (audience user or service: WatchOrder)
//   public streams  streaming methods anyone may open        <service>-public-streams
//                   (audience public: Health/Watch,          local_app_public_streams
//                   reflection, EchoService/Count)
//
// No number of streams can then fail a unary call, and no unauthenticated
// caller can use up what a signed-in user's stream needs. Past a stream
// budget a new stream fails at once with UNAVAILABLE; open ones are untouched.

/** Which budget a method's calls count against: see above. */
export type Budget = "calls" | "streams" | "public-streams";
export const BUDGETS: readonly Budget[] = ["calls", "streams", "public-streams"];

/** A unary method is a call; a server, client or bidi stream is a stream, public when its contract lets anyone call it. */
export function budgetOf(contract: MethodContract): Budget {
  if (!contract.streaming) return "calls";
  return contract.audience === "public" ? "public-streams" : "streams";
}

/** The circuit-breaker limits of a stream budget. Streams are never retried, so there is no retry budget. */
export interface StreamLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  /** Streams open at once to the whole service (all its replicas) from this proxy. */
  readonly maxRequests: number;
}

/**
 * Streams of signed-in callers, per upstream service, at each caller's proxy
 * (the edge, an outbound listener). A stream costs its replica little while
 * idle (WatchOrder re-reads its order once a second), so the budget is four
 * times the unary one: 1,024 order watches per edge.
 */
export const STREAM_LIMITS = {
  maxConnections: 64,
  maxPendingRequests: 64,
  maxRequests: 1024,
} as const satisfies StreamLimits;

/** Streams anyone may open without signing in, per upstream service, at each caller's proxy. */
export const PUBLIC_STREAM_LIMITS = {
  maxConnections: 16,
  maxPendingRequests: 64,
  maxRequests: 256,
} as const satisfies StreamLimits;

/** Streams of signed-in callers in front of an instance's own app: as many as one caller's proxy may send to the whole service. */
export const APP_STREAM_LIMITS = {
  maxConnections: 16,
  maxPendingRequests: 128,
  maxRequests: 1024,
} as const satisfies StreamLimits;

/** Public streams in front of an instance's own app (Health/Watch from inside the mesh). */
export const APP_PUBLIC_STREAM_LIMITS = {
  maxConnections: 4,
  maxPendingRequests: 64,
  maxRequests: 256,
} as const satisfies StreamLimits;

/**
 * HTTP/2 settings of the edge's listener, for clients outside the mesh.
 * max_concurrent_streams bounds what one connection can hold (Envoy's
 * default is 2^31 - 1); a client that wants more opens more connections, each
 * counted against max_active_downstream_connections. The flow-control
 * windows bound what a client may send before the edge reads it, and so what
 * the edge buffers for one stream and one connection (Envoy's defaults are
 * 256 MiB each); 64 KiB and 1 MiB are the values Envoy's edge guide gives.
 */
export const EDGE_HTTP2 = {
  maxConcurrentStreams: 100,
  initialStreamWindowSize: 65_536,
  initialConnectionWindowSize: 1_048_576,
} as const;

/** Active gRPC health checks (grpc.health.v1.Health/Check with the service's name). */
export const HEALTH_CHECK = {
  timeoutMs: 1000,
  intervalMs: 1000,
  /** Used while a cluster has had no traffic yet (Envoy's default is 60 s: a replica that starts late would wait that long). */
  noTrafficIntervalMs: 2000,
  unhealthyIntervalMs: 1000,
  jitterMs: 100,
  unhealthyThreshold: 2,
  healthyThreshold: 1,
} as const;

/**
 * Outlier detection (passive). Envoy reads a Trailers-Only grpc-status as an
 * HTTP status (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, INTERNAL 500), so gRPC
 * failures count as 5xx and gateway failures; connection failures count as
 * local-origin failures.
 */
export const OUTLIER = {
  consecutive5xx: 5,
  consecutiveGatewayFailure: 3,
  consecutiveLocalOriginFailure: 3,
  intervalMs: 2000,
  /** An ejected replica stays out this long even while it passes health checks (see clusters.ts). */
  baseEjectionTimeMs: 10_000,
  /** Never eject more than half of a service's replicas: one of two, at most. */
  maxEjectionPercent: 50,
} as const;

/** Connection-level settings for every upstream. */
export const UPSTREAM = {
  connectTimeoutMs: 1000,
  /** HTTP/2 PINGs on idle connections find a dead peer without waiting for a call to fail. */
  keepaliveIntervalMs: 15_000,
  keepaliveTimeoutMs: 5000,
} as const;

/** At most this many client connections per proxy (Envoy warns when none is set). */
export const MAX_DOWNSTREAM_CONNECTIONS = 50_000;

/** A duration as protobuf JSON writes it: "1s", "0.250s". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`not a duration: ${ms} ms`);
  const rounded = Math.round(ms);
  return rounded % 1000 === 0 ? `${rounded / 1000}s` : `${(rounded / 1000).toFixed(3)}s`;
}
