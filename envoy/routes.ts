// One Envoy route per gRPC method, from its contract: the path is exact (a
// Connect GET's query string does not take part in matching), the timeout is
// the method's deadline, and a retry policy exists only for unary methods the
// contract marks NO_SIDE_EFFECTS or IDEMPOTENT. Streams get no route timeout
// (Envoy's default of 15 s would cut them) but an idle and a total bound, and
// are never retried by a proxy. Which cluster a route goes to (the budget its
// calls count against, policy.ts) is the caller's choice.
import type { MethodContract } from "@shop/platform";
import { duration, NO_DEADLINE, RETRY, RETRY_ON, retriedByProxy, STREAM } from "./policy.ts";
import type { YamlValue } from "./yaml.ts";

export type Route = { readonly [key: string]: YamlValue };

export interface MethodRouteOptions {
  /** The upstream cluster. */
  cluster: string;
  /**
   * Whether this proxy retries. Only the caller's side does (the edge and
   * outbound listeners); an inbound listener never does, so one failure is
   * retried once by one proxy, not multiplied along the path. Streams never
   * are: once a stream has begun, Envoy cannot replay it, and a client that
   * watches something opens its watch again itself.
   */
  retries: boolean;
  /** Extra header matches, e.g. x-shop-service on the edge's per-service admin routes. */
  headers?: readonly YamlValue[];
}

export function methodRoute(contract: MethodContract, options: MethodRouteOptions): Route {
  const match: Record<string, YamlValue> = { path: contract.path };
  if (options.headers) match.headers = options.headers;
  return {
    name: contract.path.slice(1),
    match,
    route: { cluster: options.cluster, ...routeBounds(contract), retry_policy: options.retries && retriedByProxy(contract) ? retryPolicy(contract) : undefined },
  };
}

/** Timeouts of one method's route. */
export function routeBounds(contract: MethodContract): Record<string, YamlValue | undefined> {
  if (contract.streaming) {
    return {
      timeout: "0s",
      idle_timeout: duration(STREAM.idleTimeoutMs),
      max_stream_duration:
        contract.deadlineMs === undefined
          ? undefined
          : { max_stream_duration: duration(contract.deadlineMs), grpc_timeout_header_max: duration(contract.deadlineMs) },
    };
  }
  const timeoutMs = contract.deadlineMs ?? NO_DEADLINE.unaryTimeoutMs;
  return {
    timeout: duration(timeoutMs),
    max_stream_duration: {
      // The bound itself. Once a route has max_stream_duration, Envoy's router
      // ignores the route timeout above: without this, a call that carries no
      // grpc-timeout ran for as long as its tries did (3 s for Echo's 2 s in
      // the deadline drill), and one with no retry policy had no bound at all.
      // It answers DEADLINE_EXCEEDED.
      max_stream_duration: duration(timeoutMs),
      // A caller's grpc-timeout (what is left of its own budget) shortens it;
      // it never lengthens it past the contract's deadline.
      grpc_timeout_header_max: duration(timeoutMs),
    },
  };
}

/** The retry policy of a unary method the contract says is safe to repeat. */
export function retryPolicy(contract: MethodContract): YamlValue {
  const deadlineMs = contract.deadlineMs ?? NO_DEADLINE.unaryTimeoutMs;
  return {
    retry_on: RETRY_ON,
    num_retries: RETRY.numRetries,
    per_try_timeout: duration(deadlineMs * RETRY.perTryShare),
    retry_back_off: { base_interval: duration(RETRY.baseIntervalMs), max_interval: duration(RETRY.maxIntervalMs) },
    retry_host_predicate: [
      {
        name: "envoy.retry_host_predicates.previous_hosts",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" },
      },
    ],
    host_selection_retry_max_attempts: RETRY.hostSelectionAttempts,
  };
}

/** Every call under a path prefix to one cluster (health, reflection), bounded as a stream. */
export function prefixRoute(name: string, prefix: string, cluster: string, headers?: readonly YamlValue[]): Route {
  const match: Record<string, YamlValue> = { prefix };
  if (headers) match.headers = headers;
  return { name, match, route: { cluster, timeout: "0s", idle_timeout: duration(STREAM.idleTimeoutMs) } };
}

/**
 * A gRPC answer made by the proxy itself: HTTP 200 with grpc-status and no
 * body, which is a Trailers-Only response every gRPC client reads.
 */
export function grpcStatusRoute(name: string, prefix: string, code: number, message: string, options: { grpcOnly?: boolean; exact?: boolean } = {}): Route {
  return {
    name,
    // exact: the one path, not every path under the prefix.
    // grpcOnly: only requests with a gRPC content type; others fall through to Envoy's 404.
    match: { ...(options.exact ? { path: prefix } : { prefix }), grpc: options.grpcOnly ? {} : undefined },
    direct_response: { status: 200 },
    response_headers_to_add: [
      { header: { key: "content-type", value: "application/grpc" } },
      { header: { key: "grpc-status", value: String(code) } },
      { header: { key: "grpc-message", value: grpcMessage(message) } },
    ],
  };
}

/**
 * grpc-message is percent-encoded outside printable ASCII; these messages are
 * plain ASCII by construction. Envoy reads header values as format strings,
 * so a literal "%" is written "%%".
 */
function grpcMessage(message: string): string {
  if (!/^[\x20-\x7e]*$/.test(message)) throw new Error(`grpc-message must be printable ASCII: ${message}`);
  return message.replaceAll("%", "%%");
}

/** A header match: exact value. */
export function headerIs(name: string, value: string): YamlValue {
  return { name, string_match: { exact: value } };
}
