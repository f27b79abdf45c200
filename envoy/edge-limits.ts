// Rate limits at the edge, with Envoy's local_ratelimit HTTP filter: no
// rate-limit service, every bucket lives in the edge process (shared by its
// worker threads; each edge pod has its own).
//
// - Every route the edge forwards has a budget of its own (a token bucket
//   shared by every client): past it, calls of that route are turned away
//   at the edge while every other route is untouched.
// - Some methods (UserService/Login and SignUp: guessing passwords, making
//   accounts) are also limited per client address: a wildcard descriptor
//   entry (key remote_address, empty value) fed by a `remote_address`
//   rate-limit action (the filter's own rate_limits) makes one bucket per address, the
//   most recently seen `maxClients` of them kept (Envoy's
//   max_dynamic_descriptors, an LRU). The address is the TCP peer of the edge
//   (use_remote_address, no trusted hops): behind a load balancer that hides
//   it, every client shares one bucket.
// - A call turned away is answered at once, never forwarded: gRPC with
//   RESOURCE_EXHAUSTED (HTTP 200, trailers-only, grpc-status 8), Connect
//   with HTTP 429 and a Connect error body {"code":"resource_exhausted"},
//   gRPC-Web with grpc-status 8; each with a message that says so, and a
//   retry hint: `retry-after` (seconds) and `grpc-retry-pushback-ms`.
// - The limits come from policy defaults (EDGE_RATE_LIMITS), then
//   topology.json's edge.rateLimits, then the generator's options. A limit
//   asked for that names a method the edge does not route is an error, not a
//   no-op; a default one is left out (a topology without users).
// - Runtime keys (edge_rate_limit.enabled, edge_rate_limit.enforced: a
//   percentage, default 100) turn the limits off or into report-only at a
//   running edge (admin /runtime_modify) without a new config.
import type { Topology } from "@shop/platform";
import type { Route } from "./routes.ts";
import type { YamlValue } from "./yaml.ts";

/** A token bucket: `requestsPerSecond` new tokens every second, at most `burst` saved up. */
export interface TokenBucketLimit {
  readonly requestsPerSecond: number;
  readonly burst: number;
}

export interface EdgeRateLimits {
  /** Every route the edge forwards, unless `routes` names it: one bucket per route, shared by every client. */
  readonly route: TokenBucketLimit;
  /** Route budgets other than `route`, by method path without the leading "/" ("shop.catalog.v1.CatalogService/SearchProducts"). */
  readonly routes: Readonly<Record<string, TokenBucketLimit>>;
  /** Methods limited per client address too, by method path without the leading "/". */
  readonly perClient: Readonly<Record<string, TokenBucketLimit>>;
  /** Client addresses each per-client route keeps a bucket for (least recently seen forgotten first). */
  readonly maxClients: number;
}

/** The edge's limits when topology.json and the generator say nothing. */
export const EDGE_RATE_LIMITS: EdgeRateLimits = {
  // Above anything the mesh tests send through one route (500 WatchOrder
  // streams opened in batches of 50); a bound on a flood, not on use.
  route: { requestsPerSecond: 1000, burst: 2000 },
  routes: {},
  perClient: {
    // A person signs in a few times a day; a script guessing passwords, thousands of times a minute.
    "shop.users.v1.UserService/Login": { requestsPerSecond: 10, burst: 20 },
    "shop.users.v1.UserService/SignUp": { requestsPerSecond: 5, burst: 10 },
  },
  maxClients: 10_000,
};

/** Every bucket is refilled once a second: a client turned away may try again after this long. */
export const RETRY_AFTER_SECONDS = 1;

/** The filter's name: the key of its per-route configuration. */
export const RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit";

/** The descriptor key the remote_address action fills in. */
const CLIENT_KEY = "remote_address";

/** What a rate-limited caller is told (gRPC: grpc-message; Connect: the error's message). */
export const RATE_LIMITED_MESSAGE = `too many calls: the edge's rate limit for this method (per client address, or for everyone) is used up; retry after ${RETRY_AFTER_SECONDS} s`;

/** What topology.json's edge section may say about rate limits: all of it optional. */
export interface TopologyRateLimits {
  readonly route?: TokenBucketLimit;
  readonly routes?: Readonly<Record<string, TokenBucketLimit>>;
  /** Replaces the default per-client methods as a whole when given. */
  readonly perClient?: Readonly<Record<string, TokenBucketLimit>>;
  readonly maxClients?: number;
}

/** topology.json's edge.rateLimits, if any. */
function fromTopology(topology: Topology): TopologyRateLimits | undefined {
  return (topology.edge as { rateLimits?: TopologyRateLimits } | undefined)?.rateLimits;
}

/**
 * The limits the edge uses: the defaults, then topology.json's
 * edge.rateLimits, then `override` (the generator's options). `routes` are
 * merged key by key; `perClient` is replaced as a whole. `routed` holds the
 * method paths the edge routes (without the leading "/"): a limit that was
 * asked for (topology.json, options) naming another is an error; a default
 * naming one the topology does not expose (a test topology without users) is
 * left out.
 */
export function edgeRateLimitsOf(topology: Topology, routed: ReadonlySet<string>, override?: TopologyRateLimits): EdgeRateLimits {
  const asked = [fromTopology(topology), override].filter((l): l is TopologyRateLimits => l !== undefined);
  const defaults: EdgeRateLimits = { ...EDGE_RATE_LIMITS, perClient: Object.fromEntries(Object.entries(EDGE_RATE_LIMITS.perClient).filter(([path]) => routed.has(path))) };
  let limits = defaults;
  for (const layer of asked) {
    limits = {
      route: layer.route ?? limits.route,
      routes: { ...limits.routes, ...layer.routes },
      perClient: layer.perClient ?? limits.perClient,
      maxClients: layer.maxClients ?? limits.maxClients,
    };
  }
  checkRateLimits(limits, routed);
  return limits;
}

function checkBucket(where: string, b: TokenBucketLimit | undefined): void {
  if (!b || !Number.isInteger(b.requestsPerSecond) || b.requestsPerSecond < 1 || !Number.isInteger(b.burst) || b.burst < b.requestsPerSecond) {
    throw new Error(`edge rate limit ${where}: expected { requestsPerSecond: a whole number >= 1, burst: a whole number >= requestsPerSecond }, got ${JSON.stringify(b)}`);
  }
}

/** Throws when a limit is malformed or names a method the edge does not route (paths without the leading "/"). */
function checkRateLimits(limits: EdgeRateLimits, routed: ReadonlySet<string>): void {
  checkBucket("route", limits.route);
  for (const [kind, map] of [["routes", limits.routes], ["perClient", limits.perClient]] as const) {
    for (const [path, bucket] of Object.entries(map)) {
      if (!routed.has(path)) throw new Error(`edge rate limit ${kind}["${path}"]: the edge routes no such method (write it as "<package>.<Service>/<Method>", one the topology exposes)`);
      checkBucket(`${kind}["${path}"]`, bucket);
    }
  }
  if (!Number.isInteger(limits.maxClients) || limits.maxClients < 1) throw new Error(`edge rate limit maxClients: expected a whole number >= 1, got ${limits.maxClients}`);
}

function tokenBucket(b: TokenBucketLimit): YamlValue {
  return { max_tokens: b.burst, tokens_per_fill: b.requestsPerSecond, fill_interval: `${RETRY_AFTER_SECONDS}s` };
}

const ALWAYS = (key: string): YamlValue => ({ runtime_key: key, default_value: { numerator: 100, denominator: "HUNDRED" } });

/** The HTTP filter itself: does nothing but on routes with a configuration of their own (limitRoute). */
export const rateLimitFilter: YamlValue = {
  name: RATE_LIMIT_FILTER,
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    stat_prefix: "edge_rate_limit",
  },
};

/** A route's stats: http_local_rate_limit.<prefix>.{enabled,enforced,ok,rate_limited}. */
function statPrefix(route: Route): string {
  return `route_${String(route.name ?? "unnamed").replace(/[^A-Za-z0-9]+/g, "_")}`;
}

/**
 * The route with its budget and, for a per-client method, its per-address
 * buckets. Only routes that forward (route.cluster) are limited: what the
 * edge answers itself costs nothing behind it.
 */
export function limitRoute(route: Route, limits: EdgeRateLimits): Route {
  const action = route.route as Record<string, YamlValue> | undefined;
  if (!action || typeof action.cluster !== "string") return route;
  const path = typeof (route.match as Record<string, YamlValue>).path === "string" ? String((route.match as Record<string, YamlValue>).path).slice(1) : undefined;
  const budget = (path !== undefined ? limits.routes[path] : undefined) ?? limits.route;
  const perClient = path !== undefined ? limits.perClient[path] : undefined;
  const config: Record<string, YamlValue> = {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    stat_prefix: statPrefix(route),
    // The route's own bucket: every call of the route takes a token from it (always_consume_default_token_bucket's default).
    token_bucket: tokenBucket(budget),
    filter_enabled: ALWAYS("edge_rate_limit.enabled"),
    filter_enforced: ALWAYS("edge_rate_limit.enforced"),
    rate_limited_as_resource_exhausted: true,
    response_headers_to_add: [
      { header: { key: "retry-after", value: String(RETRY_AFTER_SECONDS) }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
      { header: { key: "grpc-retry-pushback-ms", value: String(RETRY_AFTER_SECONDS * 1000) }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
    ],
  };
  const out: Record<string, YamlValue> = { ...route };
  if (perClient) {
    // The client's address as a descriptor entry (the filter's own rate_limits, which Envoy 1.40
    // prefers to the route's), and one bucket per value of it (the empty value is the wildcard), on top of the route's.
    config.rate_limits = [{ actions: [{ remote_address: {} }] }];
    config.descriptors = [{ entries: [{ key: CLIENT_KEY, value: "" }], token_bucket: tokenBucket(perClient) }];
    config.max_dynamic_descriptors = limits.maxClients;
  }
  const perFilter = (route.typed_per_filter_config ?? {}) as Record<string, YamlValue>;
  out.typed_per_filter_config = { ...perFilter, [RATE_LIMIT_FILTER]: config };
  return out;
}

/**
 * A local reply with status 429: only the rate limiter makes one here (the
 * mappers never see upstream answers). Not the response flag RL: the filter
 * sets it after its local reply has been mapped.
 */
const rateLimited: YamlValue = { status_code_filter: { comparison: { op: "EQ", value: { default_value: 429, runtime_key: "edge_rate_limit.reply_status" } } } };
const contentTypeStarts = (prefix: string): YamlValue => ({ header_filter: { header: { name: "content-type", string_match: { prefix } } } });

/**
 * The HTTP connection manager's local_reply_config: how a call the rate
 * limiter turned away (a local reply of 429) is answered, by protocol. Every
 * other answer Envoy makes itself is left as it is.
 */
export function rateLimitedReplies(): YamlValue {
  return {
    mappers: [
      // gRPC-Web is not gRPC to Envoy (it would get a bare HTTP 429, read as UNAVAILABLE): trailers-only, in its own content type.
      {
        filter: { and_filter: { filters: [rateLimited, contentTypeStarts("application/grpc-web")] } },
        status_code: 200,
        headers_to_add: [
          { header: { key: "grpc-status", value: "8" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
          // Printable ASCII without "%": a valid grpc-message as it is, and no format string to Envoy.
          { header: { key: "grpc-message", value: RATE_LIMITED_MESSAGE }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
        ],
        body_format_override: { text_format_source: { inline_string: "" }, content_type: "application/grpc-web+proto" },
      },
      // gRPC: Envoy makes the trailers-only answer (grpc-status 8, from the filter) and sends this body as grpc-message.
      { filter: { and_filter: { filters: [rateLimited, contentTypeStarts("application/grpc")] } }, body_format_override: { text_format_source: { inline_string: RATE_LIMITED_MESSAGE } } },
      // Everything else (Connect POST and GET): HTTP 429 with a Connect error body.
      {
        filter: rateLimited,
        body_format_override: { json_format: { code: "resource_exhausted", message: RATE_LIMITED_MESSAGE }, content_type: "application/json" },
      },
    ],
  };
}
