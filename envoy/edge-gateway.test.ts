// The edge as a gateway, read from the generated configs as data (the drill
// test/mesh-drills/edge-gateway.test.ts runs them in Envoy): every route that
// forwards has a budget, Login and SignUp a bucket per client address, the
// limits follow topology.json and the generator's options, the browser app's
// route carries the security headers, client certificate details from
// outside are dropped, edge TLS reads the files the chart mounts, and
// reflection at the edge describes only what the edge routes.
import { expect } from "chai";
import { loadTopology } from "@shop/platform";
import type { Topology } from "@shop/platform";
import { SECURITY_HEADERS } from "../runner/security-headers.ts";
import { edgeServices, loadServiceDescriptors } from "./contracts.ts";
import { EDGE_RATE_LIMITS, RATE_LIMIT_FILTER } from "./edge-limits.ts";
import { EDGE_TLS_FILES } from "./edge.ts";
import { generateConfigs } from "./generate.ts";
import type { GenerateOptions, GeneratedConfig } from "./generate.ts";

type Json = Record<string, any>;

async function edgeOf(options: GenerateOptions, file = "edge.yaml"): Promise<GeneratedConfig> {
  const found = (await generateConfigs(options)).find((c) => c.file === file);
  if (!found) throw new Error(`no ${file}`);
  return found;
}

const listenerOf = (c: GeneratedConfig): Json => (c.config as Json).static_resources.listeners.find((l: Json) => l.name === "edge");
const hcmOf = (c: GeneratedConfig): Json => listenerOf(c).filter_chains[0].filters[0].typed_config;
const routesOf = (c: GeneratedConfig): Json[] => hcmOf(c).route_config.virtual_hosts[0].routes;
const limitOf = (r: Json): Json | undefined => r.typed_per_filter_config?.[RATE_LIMIT_FILTER];
const routeFor = (c: GeneratedConfig, path: string): Json => {
  const r = routesOf(c).find((x) => x.match.path === path && !x.match.headers);
  if (!r) throw new Error(`no route for ${path}`);
  return r;
};

describe("the edge as a gateway (envoy/edge.ts, envoy/edge-limits.ts)", function () {
  const topology = loadTopology();

  for (const target of ["local", "kubernetes"] as const) {
    it(`gives every route that forwards a budget of its own, and nothing Envoy answers itself (${target})`, async function () {
      const edge = await edgeOf({ target });
      expect(hcmOf(edge).http_filters.map((f: Json) => f.name)).to.include(RATE_LIMIT_FILTER);
      let forwarding = 0;
      for (const r of routesOf(edge)) {
        if (r.route) {
          forwarding++;
          const limit = limitOf(r);
          expect(limit, r.name).to.not.equal(undefined);
          expect(limit!.filter_enforced.default_value.numerator, r.name).to.equal(100);
          expect(limit!.rate_limited_as_resource_exhausted, r.name).to.equal(true);
          expect(limit!.response_headers_to_add.map((h: Json) => h.header.key), r.name).to.include.members(["retry-after", "grpc-retry-pushback-ms"]);
        } else expect(limitOf(r), r.name).to.equal(undefined);
      }
      expect(forwarding).to.be.greaterThan(30);
      // Login's route budget is the default, shared by everyone; its per-address bucket comes on top.
      const loginLimit = limitOf(routeFor(edge, "/shop.users.v1.UserService/Login"))!;
      expect(loginLimit.token_bucket).to.deep.equal({ max_tokens: EDGE_RATE_LIMITS.route.burst, tokens_per_fill: EDGE_RATE_LIMITS.route.requestsPerSecond, fill_interval: "1s" });
    });
  }

  it("limits Login and SignUp per client address with a wildcard remote_address descriptor, and nothing else", async function () {
    const edge = await edgeOf({ target: "kubernetes" });
    const perClient = routesOf(edge).filter((r) => limitOf(r)?.descriptors);
    expect(perClient.map((r) => r.match.path).sort()).to.deep.equal(["/shop.users.v1.UserService/Login", "/shop.users.v1.UserService/SignUp"]);
    for (const r of perClient) {
      const limit = limitOf(r)!;
      const wanted = EDGE_RATE_LIMITS.perClient[r.match.path.slice(1)];
      expect(limit.rate_limits).to.deep.equal([{ actions: [{ remote_address: {} }] }]);
      expect(limit.descriptors).to.deep.equal([{ entries: [{ key: "remote_address", value: "" }], token_bucket: { max_tokens: wanted.burst, tokens_per_fill: wanted.requestsPerSecond, fill_interval: "1s" } }]);
      expect(limit.max_dynamic_descriptors).to.equal(EDGE_RATE_LIMITS.maxClients);
    }
    // The address is the TCP peer: Envoy's own, not an x-forwarded-for a client wrote.
    expect(hcmOf(edge).use_remote_address).to.equal(true);
    expect(hcmOf(edge).xff_num_trusted_hops).to.equal(undefined);
  });

  it("answers a limited call by protocol: gRPC-Web trailers-only, gRPC's message, Connect's JSON error", async function () {
    const mappers = hcmOf(await edgeOf({ target: "local" })).local_reply_config.mappers as Json[];
    expect(mappers).to.have.length(3);
    expect(mappers[0]).to.include({ status_code: 200 });
    expect(mappers[0].body_format_override.content_type).to.equal("application/grpc-web+proto");
    expect(mappers[2].body_format_override.json_format.code).to.equal("resource_exhausted");
    for (const m of mappers) expect(JSON.stringify(m.filter)).to.contain('"default_value":429');
  });

  it("takes the limits from topology.json's edge.rateLimits, then the generator's options, and refuses a method the edge does not route", async function () {
    const withLimits: Topology = {
      ...topology,
      edge: {
        ...topology.edge!,
        rateLimits: {
          route: { requestsPerSecond: 50, burst: 60 },
          perClient: { "shop.catalog.v1.CatalogService/SearchProducts": { requestsPerSecond: 3, burst: 4 } },
        },
      } as Topology["edge"],
    };
    const edge = await edgeOf({ target: "local", topology: withLimits, edgeRateLimits: { routes: { "shop.orders.v1.OrderService/CreateOrder": { requestsPerSecond: 7, burst: 9 } } } });
    expect(limitOf(routeFor(edge, "/shop.catalog.v1.CatalogService/GetProduct"))!.token_bucket).to.deep.equal({ max_tokens: 60, tokens_per_fill: 50, fill_interval: "1s" });
    expect(limitOf(routeFor(edge, "/shop.orders.v1.OrderService/CreateOrder"))!.token_bucket).to.deep.equal({ max_tokens: 9, tokens_per_fill: 7, fill_interval: "1s" });
    // perClient replaces the defaults as a whole.
    expect(limitOf(routeFor(edge, "/shop.catalog.v1.CatalogService/SearchProducts"))!.descriptors[0].token_bucket).to.deep.equal({ max_tokens: 4, tokens_per_fill: 3, fill_interval: "1s" });
    expect(limitOf(routeFor(edge, "/shop.users.v1.UserService/Login"))!.descriptors).to.equal(undefined);

    const refusal = (options: GenerateOptions) => generateConfigs(options).then(() => "generated", (e: Error) => e.message);
    expect(await refusal({ target: "local", edgeRateLimits: { perClient: { "shop.payments.v1.PaymentService/GetPayment": { requestsPerSecond: 1, burst: 1 } } } })).to.match(
      /perClient\["shop.payments.v1.PaymentService\/GetPayment"\]: the edge routes no such method/,
    );
    expect(await refusal({ target: "local", edgeRateLimits: { route: { requestsPerSecond: 10, burst: 5 } } })).to.match(/edge rate limit route: expected/);
  });

  it("adds runner/security-headers.ts's headers to the browser app's route, replacing what the backend sent", async function () {
    const web = routesOf(await edgeOf({ target: "kubernetes" })).find((r) => r.name === "web-app")!;
    expect(web.response_headers_to_add).to.deep.equal(Object.entries(SECURITY_HEADERS).map(([key, value]) => ({ header: { key, value }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" })));
    expect(SECURITY_HEADERS["content-security-policy"]).to.match(/frame-ancestors 'none'/).and.match(/connect-src 'self'/).and.match(/script-src 'self'(;|$)/);
  });

  it("drops an x-forwarded-client-cert from outside at every edge (SANITIZE)", async function () {
    for (const [target, file] of [["local", "edge.yaml"], ["kubernetes", "edge.yaml"], ["kubernetes", "edge-tls.yaml"]] as const) {
      expect(hcmOf(await edgeOf({ target }, file)).forward_client_cert_details, `${target} ${file}`).to.equal("SANITIZE");
    }
  });

  it("serves TLS only when asked: edge-tls.yaml in Kubernetes reads the Secret mount, offering h2 and http/1.1", async function () {
    expect(listenerOf(await edgeOf({ target: "kubernetes" })).filter_chains[0].transport_socket).to.equal(undefined);
    expect(listenerOf(await edgeOf({ target: "local" })).filter_chains[0].transport_socket).to.equal(undefined);
    const tls = listenerOf(await edgeOf({ target: "kubernetes" }, "edge-tls.yaml")).filter_chains[0].transport_socket.typed_config.common_tls_context;
    expect(tls.alpn_protocols).to.deep.equal(["h2", "http/1.1"]);
    expect(tls.tls_certificates).to.deep.equal([{ certificate_chain: { filename: "/etc/shop/edge-tls/tls.crt" }, private_key: { filename: "/etc/shop/edge-tls/tls.key" } }]);
    expect(EDGE_TLS_FILES).to.deep.equal({ certificateChain: "/etc/shop/edge-tls/tls.crt", privateKey: "/etc/shop/edge-tls/tls.key" });
    const local = listenerOf(await edgeOf({ target: "local", edgeTls: { certificateChain: "/m/edge-tls/tls.crt", privateKey: "/m/edge-tls/tls.key" } })).filter_chains[0].transport_socket;
    expect(local.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename).to.equal("/m/edge-tls/tls.crt");
    // The rest of the TLS twin is the plain edge's.
    const plain = await edgeOf({ target: "kubernetes" });
    const twin = await edgeOf({ target: "kubernetes" }, "edge-tls.yaml");
    expect(routesOf(twin)).to.deep.equal(routesOf(plain));
    expect((twin.config as Json).static_resources.clusters).to.deep.equal((plain.config as Json).static_resources.clusters);
  });

  it("has reflection describe what the edge routes and not payments", async function () {
    const names = edgeServices(topology, await loadServiceDescriptors(topology)).map((s) => s.typeName);
    expect(names.filter((n) => n.startsWith("shop.payments."))).to.deep.equal([]);
    expect(names).to.include.members(["shop.users.v1.UserService", "grpc.health.v1.Health", "mesh.v1.OpsService", "mesh.v1.EventAdminService", "grpc.reflection.v1.ServerReflection"]);
    // Every shop service listed has its methods routed at the edge.
    const routed = new Set(routesOf(await edgeOf({ target: "local" })).filter((r) => r.route).map((r) => r.match.path));
    for (const s of edgeServices(topology, await loadServiceDescriptors(topology)).filter((x) => x.typeName.startsWith("shop."))) {
      for (const m of s.methods) expect(routed.has(`/${s.typeName}/${m.name}`), `/${s.typeName}/${m.name}`).to.equal(true);
    }
  });
});
