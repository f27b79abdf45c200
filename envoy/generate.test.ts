// What the generated Envoy configs say, read from the generator's output as
// data: the committed files are current, and the routes, retries, timeouts
// and clusters follow the contracts and topology.json.
import { expect } from "chai";
import { join } from "node:path";
import type { Topology } from "@shop/platform";
import { contractOf, loadTopology } from "@shop/platform";
import { upstreamClusterName } from "./clusters.ts";
import { healthService, instanceAdminServices, loadServiceDescriptors, methodContracts, reflectionServices } from "./contracts.ts";
import { generateConfigs, generatedRoot, staleFiles, TARGETS } from "./generate.ts";
import type { GeneratedConfig } from "./generate.ts";
import { KUBERNETES_SDS_DIR, KUBERNETES_TLS_DIR, spiffeId } from "./mtls.ts";
import { checkPortScheme, edgePorts, instancesOf } from "./ports.ts";
import { APP_LIMITS, APP_PUBLIC_STREAM_LIMITS, APP_STREAM_LIMITS, budgetOf, CALLER_LIMITS, duration, EDGE_HTTP2, PUBLIC_STREAM_LIMITS, RETRY, STREAM_LIMITS } from "./policy.ts";

// The generated configs are plain data; these views name the parts the assertions read.
type Json = Record<string, any>;

function listener(config: GeneratedConfig, name: string): Json {
  const found = (config.config as Json).static_resources.listeners.find((l: Json) => l.name === name);
  if (!found) throw new Error(`${config.file} has no listener ${name}`);
  return found;
}

function hcm(config: GeneratedConfig, name: string): Json {
  return listener(config, name).filter_chains[0].filters[0].typed_config;
}

function routes(config: GeneratedConfig, name: string): Json[] {
  return hcm(config, name).route_config.virtual_hosts[0].routes;
}

function route(config: GeneratedConfig, listenerName: string, path: string): Json {
  const found = routes(config, listenerName).find((r) => r.match.path === path);
  if (!found) throw new Error(`${config.file} ${listenerName} has no route for ${path}`);
  return found;
}

function clusters(config: GeneratedConfig): Json[] {
  return (config.config as Json).static_resources.clusters;
}

/** The Envoy bootstraps among the generated files (not the SDS resource files beside them). */
function bootstraps(configs: GeneratedConfig[]): GeneratedConfig[] {
  return configs.filter((c) => c.kind !== "sds");
}

function byFile(configs: GeneratedConfig[], file: string): GeneratedConfig {
  const found = configs.find((c) => c.file === file);
  if (!found) throw new Error(`no ${file} among ${configs.map((c) => c.file).join(", ")}`);
  return found;
}

describe("envoy/generate.ts", function () {
  let local: GeneratedConfig[];
  let kubernetes: GeneratedConfig[];
  const topology = loadTopology();

  before(async function () {
    local = await generateConfigs({ target: "local" });
    kubernetes = await generateConfigs({ target: "kubernetes" });
  });

  it("takes every version of a service's contract under an unversioned package (v1 and v2 side by side)", async function () {
    const services = (p: string) => ({ package: p, port: 7000, calls: [], replicas: 1 });
    const versioned = await loadServiceDescriptors({ services: { echo: services("mesh.testing.v1") } } as unknown as Topology);
    const unversioned = await loadServiceDescriptors({ services: { echo: services("mesh.testing") } } as unknown as Topology);
    expect(versioned.get("echo")!.map((s) => s.typeName)).to.deep.equal(["mesh.testing.v1.EchoService"]);
    expect(unversioned.get("echo")!.map((s) => s.typeName)).to.deep.equal(versioned.get("echo")!.map((s) => s.typeName));
  });

  it("writes what is committed in envoy/generated (run `make generate-envoy` when this fails)", async function () {
    const problems: string[] = [];
    for (const target of TARGETS) problems.push(...staleFiles(join(generatedRoot, target), await generateConfigs({ target }), target));
    expect(problems).to.deep.equal([]);
  });

  it("writes a sidecar per instance locally, one per service for Kubernetes, and one edge each (and its TLS twin for Kubernetes)", function () {
    expect(bootstraps(local).map((c) => c.file).sort()).to.deep.equal([...instancesOf(topology).map((i) => `sidecar-${i.name}.yaml`), "edge.yaml"].sort());
    expect(bootstraps(kubernetes).map((c) => c.file).sort()).to.deep.equal([...Object.keys(topology.services).map((s) => `sidecar-${s}.yaml`), "edge.yaml", "edge-tls.yaml"].sort());
    // Beside them the SDS resource files: per identity locally, one pair every pod reads in Kubernetes.
    const identities = [...Object.keys(topology.services), "edge"];
    expect(local.filter((c) => c.kind === "sds").map((c) => c.file).sort()).to.deep.equal(identities.flatMap((i) => [`sds-${i}-cert.yaml`, `sds-${i}-ca.yaml`]).sort());
    expect(kubernetes.filter((c) => c.kind === "sds").map((c) => c.file).sort()).to.deep.equal(["sds-mesh-ca.yaml", "sds-mesh-cert.yaml"]);
    expect(local.filter((c) => c.service === "catalog")).to.have.length(2);
  });

  describe("routes follow the contracts", function () {
    it("gives every method's route, at every proxy, the method's deadline as its timeout", async function () {
      const descriptors = await loadServiceDescriptors(topology);
      const contracts = new Map([...descriptors.values()].flat().flatMap((s) => s.methods.map(contractOf)).map((c) => [c.path, c]));
      let checked = 0;
      for (const config of bootstraps([...local, ...kubernetes])) {
        for (const name of config.kind === "edge" ? ["edge"] : ["inbound", "outbound"]) {
          for (const r of routes(config, name)) {
            const contract = contracts.get(r.match.path);
            if (!contract) continue;
            checked++;
            if (contract.streaming) expect(r.route.timeout, r.name).to.equal("0s");
            else expect(r.route.timeout, `${config.file} ${r.name}`).to.equal(duration(contract.deadlineMs!));
          }
        }
      }
      expect(checked).to.be.greaterThan(100);
    });

    it("never retries UserService/SignUp (no idempotency level), at the edge or from storefront's sidecar", function () {
      expect(route(byFile(local, "edge.yaml"), "edge", "/shop.users.v1.UserService/SignUp").route).to.not.have.property("retry_policy");
      const storefront = byFile(local, "sidecar-storefront-0.yaml");
      expect(route(storefront, "outbound", "/shop.users.v1.UserService/SignUp").route).to.not.have.property("retry_policy");
    });

    it("retries read-only and idempotent methods on unavailable and connection failures only, on another host, with backoff and a per-try timeout", function () {
      const edge = byFile(local, "edge.yaml");
      for (const path of ["/shop.catalog.v1.CatalogService/GetProduct", "/shop.orders.v1.OrderService/CreateOrder", "/shop.users.v1.UserService/Login"]) {
        const policy = route(edge, "edge", path).route.retry_policy;
        expect(policy, path).to.be.an("object");
        expect(policy.retry_on.split(",")).to.have.members(["unavailable", "connect-failure", "refused-stream", "reset"]);
        expect(policy.num_retries).to.equal(RETRY.numRetries);
        expect(policy.retry_host_predicate.map((p: Json) => p.name)).to.deep.equal(["envoy.retry_host_predicates.previous_hosts"]);
        expect(policy.host_selection_retry_max_attempts).to.equal(RETRY.hostSelectionAttempts);
        expect(policy.retry_back_off).to.deep.equal({ base_interval: "0.025s", max_interval: "0.250s" });
      }
      // Half of GetProduct's 1000 ms deadline: a hung replica leaves time for a second try.
      expect(route(edge, "edge", "/shop.catalog.v1.CatalogService/GetProduct").route.retry_policy.per_try_timeout).to.equal("0.500s");
    });

    it("never retries at an inbound listener: the caller's proxy does, once", function () {
      for (const config of local.filter((c) => c.kind === "sidecar")) {
        for (const r of routes(config, "inbound")) expect(r.route, `${config.file} ${r.name}`).to.not.have.property("retry_policy");
      }
    });

    it("gives WatchOrder no route timeout but an idle timeout and a maximum stream duration, a stream cluster and no retries", function () {
      for (const [config, name, cluster] of [
        [byFile(local, "edge.yaml"), "edge", "orders-streams"],
        [byFile(local, "sidecar-orders-1.yaml"), "inbound", "local_app_streams"],
        [byFile(local, "sidecar-storefront-0.yaml"), "outbound", "orders-streams"],
      ] as const) {
        const r = route(config, name, "/shop.orders.v1.OrderService/WatchOrder").route;
        expect(r.timeout).to.equal("0s");
        expect(r.idle_timeout).to.equal("60s");
        expect(r.max_stream_duration.max_stream_duration).to.equal("300s");
        expect(r.cluster).to.equal(cluster);
        expect(r).to.not.have.property("retry_policy");
      }
    });

    it("bounds unary calls by the caller's grpc-timeout, never beyond the deadline", function () {
      const r = route(byFile(local, "edge.yaml"), "edge", "/shop.storefront.v1.StorefrontService/GetProfilePage").route;
      expect(r.timeout).to.equal("1.500s");
      expect(r.max_stream_duration).to.deep.equal({ max_stream_duration: "1.500s", grpc_timeout_header_max: "1.500s" });
    });

    it("applies the same rules to a contract with non-idempotent and streaming methods (EchoService)", async function () {
      const fixture: Topology = {
        services: {
          echo: { package: "mesh.testing.v1", replicas: 2, port: 7801, calls: [] },
          users: { package: "shop.users.v1", replicas: 1, port: 7101, calls: ["echo"] },
        },
        edge: { port: 8080, exposes: ["echo"] },
      };
      const configs = await generateConfigs({ target: "local", topology: fixture });
      const users = byFile(configs, "sidecar-users-0.yaml");
      expect(route(users, "outbound", "/mesh.testing.v1.EchoService/Fail").route).to.not.have.property("retry_policy");
      expect(route(users, "outbound", "/mesh.testing.v1.EchoService/Echo").route.retry_policy).to.be.an("object");
      expect(route(users, "outbound", "/mesh.testing.v1.EchoService/Count").route).to.include({ timeout: "0s", cluster: "echo-public-streams" });
      expect(route(users, "outbound", "/mesh.testing.v1.EchoService/Count").route).to.not.have.property("retry_policy");
      expect(route(byFile(configs, "edge.yaml"), "edge", "/mesh.testing.v1.EchoService/Fail").route).to.not.have.property("retry_policy");
    });
  });

  describe("sidecars route only what topology.json allows", function () {
    it("lets orders call catalog and nothing else: every other call answers PERMISSION_DENIED", function () {
      for (const config of [byFile(local, "sidecar-orders-0.yaml"), byFile(kubernetes, "sidecar-orders.yaml")]) {
        const out = routes(config, "outbound");
        const methodRoutes = out.filter((r) => r.route);
        expect(new Set(methodRoutes.map((r) => r.route.cluster))).to.deep.equal(new Set(["catalog"]));
        expect(methodRoutes.map((r) => r.match.path)).to.include("/shop.catalog.v1.CatalogService/QuotePrice");
        const last = out[out.length - 1];
        expect(last.match).to.deep.equal({ prefix: "/" });
        expect(last.response_headers_to_add.map((h: Json) => h.header)).to.deep.include({ key: "grpc-status", value: "7" });
        expect(clusters(config).map((c) => c.name)).to.deep.equal(["local_app", "local_app_streams", "local_app_public_streams", "catalog"]);
      }
    });

    it("gives storefront routes to exactly users, orders, catalog and inventory (WatchOrder to orders' stream budget)", function () {
      const out = routes(byFile(local, "sidecar-storefront-0.yaml"), "outbound").filter((r) => r.route);
      expect(new Set(out.map((r) => r.route.cluster))).to.deep.equal(new Set(["users", "orders", "orders-streams", "catalog", "inventory"]));
    });

    it("sends an instance's inbound calls to its own app on loopback, at the port of its replica", function () {
      const catalog1 = byFile(local, "sidecar-catalog-1.yaml");
      const app = clusters(catalog1).find((c) => c.name === "local_app")!;
      expect(app.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).to.deep.equal({ address: "127.0.0.1", port_value: 7202 });
      expect(new Set(routes(catalog1, "inbound").map((r) => r.route.cluster))).to.deep.equal(new Set(["local_app", "local_app_public_streams"]));
      for (const c of clusters(catalog1).filter((x) => x.name.startsWith("local_app"))) {
        expect(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, c.name).to.deep.equal({ address: "127.0.0.1", port_value: 7202 });
      }
    });
  });

  describe("upstream clusters", function () {
    const upstreams = (configs: GeneratedConfig[]) => bootstraps(configs).flatMap((c) => clusters(c).filter((x) => !x.name.startsWith("local_app")).map((x) => ({ file: c.file, cluster: x })));
    /** "orders-streams" → "orders". */
    const serviceOf = (cluster: string) => cluster.replace(/-(public-)?streams$/, "");

    it("balance by least requests over HTTP/2, with active gRPC health checks naming the service, outlier detection and finite circuit breakers", async function () {
      const descriptors = await loadServiceDescriptors(topology);
      const all = upstreams([...local, ...kubernetes]);
      expect(all.length).to.be.greaterThan(20);
      for (const { file, cluster } of all) {
        const what = `${file} ${cluster.name}`;
        expect(cluster.lb_policy, what).to.equal("LEAST_REQUEST");
        expect(cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config, what).to.have.property("http2_protocol_options");
        const service = serviceOf(cluster.name);
        const expectedName = service === "reflection" ? "" : descriptors.get(service)![0].typeName;
        expect(cluster.health_checks[0].grpc_health_check, what).to.deep.equal({ service_name: expectedName });
        expect(cluster.outlier_detection, what).to.include({ consecutive_5xx: 5, consecutive_gateway_failure: 3, max_ejection_percent: 50 });
        const limits = cluster.circuit_breakers.thresholds[0];
        if (service === cluster.name) {
          expect(limits, what).to.include({ max_requests: CALLER_LIMITS.maxRequests, max_pending_requests: CALLER_LIMITS.maxPendingRequests, max_connections: CALLER_LIMITS.maxConnections });
          expect(limits.retry_budget, what).to.deep.equal({ budget_percent: { value: CALLER_LIMITS.retryBudgetPercent }, min_retry_concurrency: CALLER_LIMITS.minRetryConcurrency });
        } else {
          const expected = cluster.name.endsWith("-public-streams") ? PUBLIC_STREAM_LIMITS : STREAM_LIMITS;
          expect(limits, what).to.deep.equal({
            priority: "DEFAULT",
            max_connections: expected.maxConnections,
            max_pending_requests: expected.maxPendingRequests,
            max_requests: expected.maxRequests,
            max_retries: 0,
            track_remaining: true,
          });
        }
      }
    });

    it("list every replica locally (STATIC), and a headless Service's DNS name in Kubernetes (STRICT_DNS)", function () {
      const localCatalog = clusters(byFile(local, "edge.yaml")).find((c) => c.name === "catalog")!;
      expect(localCatalog.type).to.equal("STATIC");
      expect(localCatalog.load_assignment.endpoints[0].lb_endpoints.map((e: Json) => e.endpoint.address.socket_address)).to.deep.equal([
        { address: "127.0.0.1", port_value: 7211 },
        { address: "127.0.0.1", port_value: 7212 },
      ]);
      const k8sCatalog = clusters(byFile(kubernetes, "sidecar-orders.yaml")).find((c) => c.name === "catalog")!;
      expect(k8sCatalog.type).to.equal("STRICT_DNS");
      expect(k8sCatalog.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).to.deep.equal({
        address: "catalog.shop.svc.cluster.local",
        port_value: 7211,
      });
      expect(listener(byFile(kubernetes, "sidecar-orders.yaml"), "inbound").address.socket_address.address).to.equal("0.0.0.0");
      expect(listener(byFile(kubernetes, "sidecar-orders.yaml"), "outbound").address.socket_address.address).to.equal("127.0.0.1");
    });
  });

  describe("the edge", function () {
    it("routes every method of every exposed service, and health of every service by the x-shop-service header", async function () {
      const edge = byFile(local, "edge.yaml");
      const descriptors = await loadServiceDescriptors(topology);
      for (const service of topology.edge!.exposes) {
        for (const method of descriptors.get(service)!.flatMap((s) => s.methods)) {
          expect(route(edge, "edge", contractOf(method).path).route.cluster).to.equal(upstreamClusterName(service, budgetOf(contractOf(method))));
        }
      }
      const payments = routes(edge, "edge").filter((r) => r.route?.cluster === "payments");
      expect(payments.map((r) => r.match.path)).to.have.members(["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/List"]);
      expect(payments[0].match.headers).to.deep.equal([{ name: "x-shop-service", string_match: { exact: "payments" } }]);
    });

    it("routes reflection to the reflection backend, or answers UNIMPLEMENTED when it is switched off", async function () {
      const on = byFile(local, "edge.yaml");
      // A stream anyone may open: reflection's own budget, apart from the browser app and the mesh-wide RPCs.
      expect(route(on, "edge", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").route.cluster).to.equal("reflection-public-streams");
      expect(clusters(on).map((c) => c.name)).to.include.members(["reflection", "reflection-public-streams"]);
      const off = byFile(await generateConfigs({ target: "local", reflection: false }), "edge.yaml");
      expect(routes(off, "edge").find((r) => r.match.path?.startsWith("/grpc.reflection."))).to.equal(undefined);
      const refuse = routes(off, "edge").find((r) => r.name === "reflection-off")!;
      expect(refuse.response_headers_to_add.map((h: Json) => h.header)).to.deep.include({ key: "grpc-status", value: "12" });
      expect(clusters(off).map((c) => c.name)).to.not.include("reflection").and.not.include("reflection-public-streams");
    });

    it("allows CORS from the configured web origins only, and passes gRPC-Web and Connect through to the services", async function () {
      const edge = byFile(await generateConfigs({ target: "local", webOrigins: ["https://shop.example"] }), "edge.yaml");
      const manager = hcm(edge, "edge");
      const cors = manager.route_config.virtual_hosts[0].typed_per_filter_config["envoy.filters.http.cors"];
      expect(cors.allow_origin_string_match).to.deep.equal([{ exact: "https://shop.example" }]);
      expect(cors.allow_headers).to.include("connect-protocol-version").and.include("x-grpc-web").and.include("traceparent");
      const filters = manager.http_filters.map((f: Json) => f.name);
      expect(filters).to.include("envoy.filters.http.cors");
      // The services speak gRPC-Web themselves: no translation at the edge.
      expect(filters).to.not.include("envoy.filters.http.grpc_web");
    });

    it("writes JSON access logs with the trace id taken from traceparent", function () {
      for (const config of [byFile(local, "edge.yaml"), byFile(local, "sidecar-orders-0.yaml")]) {
        const manager = hcm(config, config.kind === "edge" ? "edge" : "inbound");
        const format = manager.access_log[0].typed_config.log_format.json_format;
        expect(format).to.include({ trace_id: "%DYNAMIC_METADATA(shop.trace:trace_id)%", traceparent: "%REQ(TRACEPARENT)%" });
        expect(manager.http_filters[0].name).to.equal("envoy.filters.http.header_to_metadata");
      }
    });

    it("keeps admin endpoints on loopback, in both targets", function () {
      for (const config of bootstraps([...local, ...kubernetes])) {
        expect((config.config as Json).admin.address.socket_address.address, config.file).to.equal("127.0.0.1");
      }
    });
  });

  describe("budgets: streams never share a circuit breaker with unary calls", function () {
    const proxies = () =>
      bootstraps([...local, ...kubernetes]).flatMap((config) => (config.kind === "edge" ? ["edge"] : ["inbound", "outbound"]).map((name) => ({ config, name })));

    it("sends every method, at every proxy, to the cluster of its budget: unary, signed-in streams, public streams", async function () {
      const descriptors = await loadServiceDescriptors(topology);
      const every = [...[...descriptors.values()].flat(), healthService, ...instanceAdminServices, ...reflectionServices];
      const contracts = new Map(methodContracts(every).map((c) => [c.path, c]));
      const seen = new Set<string>();
      for (const { config, name } of proxies()) {
        const byBudget = new Map<string, Set<string>>();
        for (const r of routes(config, name).filter((x) => x.route && x.match.path)) {
          const contract = contracts.get(r.match.path);
          if (!contract) continue;
          const budget = budgetOf(contract);
          seen.add(budget);
          const cluster: string = r.route.cluster;
          const what = `${config.file} ${name} ${r.name} → ${cluster}`;
          if (budget === "calls") expect(cluster, what).to.not.match(/streams$/);
          if (budget === "streams") expect(cluster, what).to.match(/(-|_)streams$/).and.not.match(/public/);
          if (budget === "public-streams") expect(cluster, what).to.match(/(-|_)public_?-?streams$/);
          if (budget !== "calls") expect(r.route, what).to.not.have.property("retry_policy");
          byBudget.set(cluster, (byBudget.get(cluster) ?? new Set()).add(budget));
        }
        for (const [cluster, budgets] of byBudget) expect([...budgets], `${config.file} ${name}: budgets sharing ${cluster}`).to.have.length(1);
      }
      expect([...seen].sort()).to.deep.equal(["calls", "public-streams", "streams"]);
    });

    it("gives each stream cluster the endpoints and health checks of its service's unary cluster, and no retries", function () {
      let checked = 0;
      for (const config of bootstraps([...local, ...kubernetes])) {
        const all = clusters(config);
        for (const c of all.filter((x) => /-(public-)?streams$/.test(x.name))) {
          const unary = all.find((x) => x.name === c.name.replace(/-(public-)?streams$/, ""))!;
          const what = `${config.file} ${c.name}`;
          expect(c.load_assignment.endpoints, what).to.deep.equal(unary.load_assignment.endpoints);
          expect(c.health_checks, what).to.deep.equal(unary.health_checks);
          expect(c.outlier_detection, what).to.deep.equal(unary.outlier_detection);
          expect(c.circuit_breakers.thresholds[0], what).to.include({ max_retries: 0 }).and.not.have.property("retry_budget");
          checked++;
        }
      }
      // orders-streams and reflection-public-streams at each edge (the local one, the kubernetes one and its TLS twin), orders-streams at each storefront sidecar.
      expect(checked).to.equal(8);
    });

    it("puts the inbound side's streams in front of the app on budgets of their own", function () {
      const orders = byFile(local, "sidecar-orders-0.yaml");
      const limits = Object.fromEntries(clusters(orders).filter((c) => c.name.startsWith("local_app")).map((c) => [c.name, c.circuit_breakers.thresholds[0].max_requests]));
      expect(limits).to.deep.equal({ local_app: APP_LIMITS.maxRequests, local_app_streams: APP_STREAM_LIMITS.maxRequests, local_app_public_streams: APP_PUBLIC_STREAM_LIMITS.maxRequests });
      expect(route(orders, "inbound", "/grpc.health.v1.Health/Watch").route.cluster).to.equal("local_app_public_streams");
      expect(route(orders, "inbound", "/grpc.health.v1.Health/Check").route.cluster).to.equal("local_app");
    });

    it("bounds the streams one client connection holds at the edge, and only there", function () {
      for (const config of bootstraps([...local, ...kubernetes])) {
        for (const name of config.kind === "edge" ? ["edge"] : ["inbound", "outbound"]) {
          const h2 = hcm(config, name).http2_protocol_options;
          if (config.kind === "edge") {
            expect(h2, config.file).to.deep.equal({
              max_concurrent_streams: EDGE_HTTP2.maxConcurrentStreams,
              initial_stream_window_size: EDGE_HTTP2.initialStreamWindowSize,
              initial_connection_window_size: EDGE_HTTP2.initialConnectionWindowSize,
            });
          } else expect(h2, `${config.file} ${name}`).to.equal(undefined);
        }
      }
    });

    it("answers Health/Watch at the edge itself with UNIMPLEMENTED, whatever x-shop-service says", function () {
      for (const edge of [byFile(local, "edge.yaml"), byFile(kubernetes, "edge.yaml")]) {
        const watch = routes(edge, "edge").filter((r) => r.match.path === "/grpc.health.v1.Health/Watch");
        expect(watch.map((r) => r.name)).to.deep.equal(["not-at-edge/grpc.health.v1.Health/Watch"]);
        expect(watch[0].match).to.not.have.property("headers");
        expect(watch[0].response_headers_to_add.map((h: Json) => h.header)).to.deep.include({ key: "grpc-status", value: "12" });
        // Nothing under the health prefix reaches an upstream but Check and List.
        const upstream = routes(edge, "edge").filter((r) => r.route && (r.match.path ?? r.match.prefix ?? "").startsWith("/grpc.health.v1.Health/"));
        expect(new Set(upstream.map((r) => r.match.path))).to.deep.equal(new Set(["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/List"]));
      }
    });
  });

  describe("mTLS and RBAC from the topology", function () {
    const TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.";
    const sdsPathsOf = (context: Json) => [
      ...context.tls_certificate_sds_secret_configs.map((c: Json) => c.sds_config.path_config_source.path),
      (context.validation_context_sds_secret_config ?? context.combined_validation_context.validation_context_sds_secret_config).sds_config.path_config_source.path,
    ];
    /** The principals (service names) and path prefixes of each RBAC policy of a sidecar's inbound listener. */
    const rbacOf = (config: GeneratedConfig) => {
      const filter = hcm(config, "inbound").http_filters.find((f: Json) => f.name === "envoy.filters.http.rbac");
      expect(filter, config.file).to.not.equal(undefined);
      expect(filter.typed_config.rules.action).to.equal("ALLOW");
      return Object.fromEntries(
        Object.entries(filter.typed_config.rules.policies as Record<string, Json>).map(([name, p]) => [
          name,
          {
            from: p.principals[0].or_ids.ids.map((id: Json) => String(id.authenticated.principal_name.exact).replace(/^spiffe:\/\/shop\.local\/ns\/shop\/sa\//, "")),
            paths: p.permissions[0].or_rules.rules.map((r: Json) => r.url_path.path.prefix),
          },
        ]),
      );
    };

    it("requires a client certificate of the mesh CA on every inbound listener (TLS 1.3, h2), read through watched SDS files", function () {
      for (const config of bootstraps([...local, ...kubernetes]).filter((c) => c.kind === "sidecar")) {
        const socket = listener(config, "inbound").filter_chains[0].transport_socket;
        expect(socket.typed_config["@type"], config.file).to.equal(`${TLS}DownstreamTlsContext`);
        expect(socket.typed_config.require_client_certificate).to.equal(true);
        const context = socket.typed_config.common_tls_context;
        expect(context.alpn_protocols).to.deep.equal(["h2"]);
        expect(context.tls_params.tls_minimum_protocol_version).to.equal("TLSv1_3");
        const dir = local.includes(config) ? ".mesh/envoy" : KUBERNETES_SDS_DIR;
        const identity = local.includes(config) ? config.service : "mesh";
        expect(sdsPathsOf(context)).to.deep.equal([`${dir}/sds-${identity}-cert.yaml`, `${dir}/sds-${identity}-ca.yaml`]);
        for (const c of [...context.tls_certificate_sds_secret_configs, context.validation_context_sds_secret_config]) {
          expect(c.sds_config.path_config_source.watched_directory, config.file).to.deep.equal({ path: dir });
        }
        // The outbound listener is the app's, on loopback: cleartext.
        expect(listener(config, "outbound").filter_chains[0]).to.not.have.property("transport_socket");
      }
    });

    it("hands the app the verified caller (x-forwarded-client-cert, SANITIZE_SET with the URI) at inbound listeners only", function () {
      for (const config of bootstraps(local).filter((c) => c.kind === "sidecar")) {
        expect(hcm(config, "inbound"), config.file).to.include({ forward_client_cert_details: "SANITIZE_SET" });
        expect(hcm(config, "inbound").set_current_client_cert_details).to.deep.equal({ uri: true });
        // Envoy's default elsewhere (SANITIZE): a header the app sends out is dropped.
        expect(hcm(config, "outbound")).to.not.have.property("forward_client_cert_details");
      }
    });

    it("presents the caller's certificate to every other service's inbound listener and accepts only the callee's SPIFFE ID", function () {
      let checked = 0;
      for (const config of bootstraps([...local, ...kubernetes])) {
        for (const c of clusters(config)) {
          const service = c.name.replace(/-(public-)?streams$/, "");
          if (!topology.services[service]) {
            // The app beside a sidecar, the edge backend beside the edge: loopback, cleartext.
            expect(c, `${config.file} ${c.name}`).to.not.have.property("transport_socket");
            continue;
          }
          const context = c.transport_socket.typed_config;
          expect(context["@type"], `${config.file} ${c.name}`).to.equal(`${TLS}UpstreamTlsContext`);
          expect(context.common_tls_context.alpn_protocols).to.deep.equal(["h2"]);
          expect(context.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names).to.deep.equal([
            { san_type: "URI", matcher: { exact: spiffeId(service) } },
          ]);
          const own = config.kind === "edge" ? "edge" : config.service;
          const [dir, identity] = local.includes(config) ? [".mesh/envoy", own] : [KUBERNETES_SDS_DIR, "mesh"];
          expect(sdsPathsOf(context.common_tls_context)).to.deep.equal([`${dir}/sds-${identity}-cert.yaml`, `${dir}/sds-${identity}-ca.yaml`]);
          checked++;
        }
      }
      expect(checked).to.be.greaterThan(30);
    });

    it("lets only the callers topology.json names, the edge and the edge backend through, each to its own paths", function () {
      const health = "/grpc.health.v1.Health/";
      const admin = ["/mesh.v1.EventAdminService/", "/mesh.v1.OpsService/"];
      for (const catalog of [byFile(local, "sidecar-catalog-1.yaml"), byFile(kubernetes, "sidecar-catalog.yaml")]) {
        expect(rbacOf(catalog)).to.deep.equal({
          "topology-callers": { from: ["orders", "storefront"], paths: ["/shop.catalog.v1.CatalogService/", health] },
          edge: { from: ["edge"], paths: ["/shop.catalog.v1.CatalogService/", health, ...admin] },
          "edge-backend": { from: ["edge-backend"], paths: admin },
        });
      }
      // Nobody calls payments and the edge does not expose it: the edge may ask its health, the edge backend its admin services.
      expect(rbacOf(byFile(local, "sidecar-payments-0.yaml"))).to.deep.equal({
        edge: { from: ["edge"], paths: [health] },
        "edge-backend": { from: ["edge-backend"], paths: admin },
      });
      expect(rbacOf(byFile(local, "sidecar-orders-0.yaml"))["topology-callers"].from).to.deep.equal(["storefront"]);
      // Before the gRPC stats and the router; the refusal names the rule.
      const orders = hcm(byFile(local, "sidecar-orders-0.yaml"), "inbound");
      expect(orders.http_filters.map((f: Json) => f.name)).to.deep.equal([
        "envoy.filters.http.header_to_metadata",
        "envoy.filters.http.rbac",
        "envoy.filters.http.grpc_stats",
        "envoy.filters.http.router",
      ]);
      expect(orders.local_reply_config.mappers[0].body_format_override.text_format_source.inline_string).to.match(/may not call %REQ\(:PATH\)% on orders: topology.json lets storefront call orders/);
    });

    it("writes SDS files that name the certificate folder: the mesh folder locally, the Secret mount in Kubernetes", function () {
      const cert = byFile(kubernetes, "sds-mesh-cert.yaml").config as Json;
      expect(cert.resources).to.have.length(1);
      expect(cert.resources[0].tls_certificate).to.deep.equal({
        certificate_chain: { filename: `${KUBERNETES_TLS_DIR}/tls.crt` },
        private_key: { filename: `${KUBERNETES_TLS_DIR}/tls.key` },
        watched_directory: { path: KUBERNETES_TLS_DIR },
      });
      expect((byFile(kubernetes, "sds-mesh-ca.yaml").config as Json).resources[0].validation_context).to.deep.equal({
        trusted_ca: { filename: `${KUBERNETES_TLS_DIR}/ca.crt` },
        watched_directory: { path: KUBERNETES_TLS_DIR },
      });
      expect((byFile(local, "sds-orders-cert.yaml").config as Json).resources[0].tls_certificate.private_key).to.deep.equal({ filename: ".mesh/certs/orders/tls.key" });
    });

    it("leaves mTLS out only when asked to (mtls: false), and then nothing of it is written", async function () {
      const plain = await generateConfigs({ target: "local", mtls: false });
      expect(plain.filter((c) => c.kind === "sds")).to.deep.equal([]);
      const orders = byFile(plain, "sidecar-orders-0.yaml");
      expect(listener(orders, "inbound").filter_chains[0]).to.not.have.property("transport_socket");
      expect(hcm(orders, "inbound").http_filters.map((f: Json) => f.name)).to.not.include("envoy.filters.http.rbac");
      expect(clusters(orders).find((c) => c.name === "catalog")).to.not.have.property("transport_socket");
    });
  });

  describe("the port scheme", function () {
    it("gives every process of the local mesh its own port, and an offset moves them all", function () {
      const ports = (offset: number) => {
        const edge = edgePorts(topology, offset);
        return [edge.listener, edge.admin, edge.reflection, ...instancesOf(topology, offset).flatMap((i) => Object.values(i.ports))];
      };
      expect(new Set(ports(0)).size).to.equal(ports(0).length);
      expect(ports(1000)).to.deep.equal(ports(0).map((p) => p + 1000));
    });

    it("rejects a topology whose services' port blocks overlap or that has too many replicas", function () {
      const base = { services: { a: { package: "a.v1", replicas: 1, port: 7000, calls: [] }, b: { package: "b.v1", replicas: 1, port: 7020, calls: [] } } };
      expect(() => checkPortScheme(base)).to.throw(/b \(ports 7020-7059\) overlaps a \(ports 7000-7039\)/);
      expect(() => checkPortScheme({ services: { a: { package: "a.v1", replicas: 11, port: 7000, calls: [] } } })).to.throw(/11 replicas/);
    });
  });
});
