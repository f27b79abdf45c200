// The edge's routes to its backend, read from the generated config: the
// browser app and the mesh-wide operations RPCs reach the process beside the
// edge whether reflection is on or off, and x-shop-service still picks one
// service's instances.
import { expect } from "chai";
import { loadTopology } from "@shop/platform";
import { edgeBackendCluster } from "../../envoy/edge.ts";
import { generateConfigs } from "../../envoy/generate.ts";
import { edgePorts } from "../../envoy/ports.ts";

type Json = Record<string, any>;

async function edge(reflection: boolean): Promise<{ routes: Json[]; clusters: Json[] }> {
  const config = (await generateConfigs({ target: "local", reflection })).find((c) => c.kind === "edge")!.config as Json;
  const listener = config.static_resources.listeners.find((l: Json) => l.name === "edge");
  return { routes: listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes, clusters: config.static_resources.clusters };
}

/** The first route Envoy would pick for a path, a method and headers (exact path or prefix; header matches as the edge uses them). */
function pick(routes: Json[], path: string, method: string, headers: Record<string, string> = {}): Json | undefined {
  const all: Record<string, string> = { ":method": method, ...headers };
  return routes.find((r) => {
    const m = r.match;
    if (m.path !== undefined ? m.path !== path : !path.startsWith(m.prefix)) return false;
    if (m.grpc && !(all["content-type"] ?? "").startsWith("application/grpc")) return false;
    return (m.headers ?? []).every((h: Json) => {
      const value = all[h.name];
      if (h.present_match) return (value !== undefined) !== Boolean(h.invert_match);
      if (h.string_match?.exact !== undefined) return value === h.string_match.exact;
      if (h.string_match?.safe_regex) return value !== undefined && new RegExp(h.string_match.safe_regex.regex).test(value);
      throw new Error(`unknown header match ${JSON.stringify(h)}`);
    });
  });
}

describe("the edge's routes to its backend (envoy/edge.ts)", function () {
  const topology = loadTopology();

  for (const reflection of [true, false]) {
    describe(`with reflection ${reflection ? "on" : "off"}`, function () {
      const backend = edgeBackendCluster(reflection);

      it("sends the app's files and any other GET or HEAD that is no RPC to the backend; other methods find no route", async function () {
        const { routes, clusters } = await edge(reflection);
        for (const path of ["/", "/index.html", "/assets/index-abc123.js", "/some/page"]) {
          expect(pick(routes, path, "GET")?.route?.cluster, path).to.equal(backend);
          expect(pick(routes, path, "HEAD")?.route?.cluster, path).to.equal(backend);
        }
        expect(pick(routes, "/", "POST")).to.equal(undefined);
        for (const path of ["/metrics", "/healthz"]) expect(pick(routes, path, "GET")?.direct_response, path).to.deep.equal({ status: 404 });
        const cluster = clusters.find((c) => c.name === backend)!;
        expect(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).to.deep.equal({ address: "127.0.0.1", port_value: edgePorts(topology).reflection });
      });

      it("sends the operations RPCs without x-shop-service to the backend, with it to that service's replicas", async function () {
        const { routes } = await edge(reflection);
        for (const path of ["/mesh.v1.OpsService/GetSystemMap", "/mesh.v1.EventAdminService/RetryDeadLetter"]) {
          for (const contentType of ["application/grpc", "application/json"]) {
            const meshWide = pick(routes, path, "POST", { "content-type": contentType })!;
            expect(meshWide.route.cluster, path).to.equal(backend);
            expect(meshWide.route, "one process: nothing to retry on").to.not.have.property("retry_policy");
            expect(pick(routes, path, "POST", { "content-type": contentType, "x-shop-service": "orders" })!.route.cluster).to.equal("orders");
          }
          // A service the edge does not expose: still told to name one it does.
          expect(pick(routes, path, "POST", { "content-type": "application/grpc", "x-shop-service": "payments" })!.name).to.equal("admin-needs-service");
        }
        // Health has no mesh-wide answer: it still needs the header.
        expect(pick(routes, "/grpc.health.v1.Health/Check", "POST", { "content-type": "application/grpc" })!.name).to.equal("health-needs-service");
      });
    });
  }
});
