// OpsService: what the operations console reads, served by every process
// over its own health, metrics, recent spans and recent log lines; and the
// merge an aggregator does over several instances.
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { context, SpanKind as OtelSpanKind, trace } from "@opentelemetry/api";
import {
  EdgeKind,
  GetMethodStatsResponseSchema,
  ListRecentTracesResponseSchema,
  MethodStatsSchema,
  OpsService,
  ServingState,
  SpanKind,
} from "../../gen/mesh/v1/ops_pb.js";
import { Code, failureOf, grpcClient } from "../../test/support/connect-clients.ts";
import { createClientFactory } from "../clients.ts";
import { createHealthRegistry, ServingStatus } from "../health.ts";
import { createServer } from "../server.ts";
import type { ShopServer } from "../server.ts";
import { createLogger, createLogRing } from "../telemetry/logger.ts";
import { createRpcMetrics } from "../telemetry/metrics.ts";
import { createRecentSpans, installTracing, tracer } from "../telemetry/tracing.ts";
import { createEchoService, EchoService } from "../testing/echo-service.ts";
import { createOpsAggregator, mergeMethodStats, mergeTraceLists } from "./merge.ts";
import { createMethodStatsSampler, quantileFromBuckets } from "./method-stats.ts";
import { createOpsService } from "./ops-service.ts";
import type { Topology } from "./topology.ts";
import { testAuthority } from "../../test/support/keys.ts";


const topology: Topology = {
  services: {
    echo: { package: "mesh.testing.v1", replicas: 2, port: 7001, calls: [] },
    front: { package: "mesh.front.v1", replicas: 1, port: 7002, calls: ["echo"] },
  },
  edge: { port: 8080, exposes: ["front"] },
};

describe("ops", function () {
  describe("OpsService over one process", function () {
    let server: ShopServer;
    let url: string;
    const ring = createLogRing(1000);
    const auth = async () => ({ headers: { authorization: `Bearer ${await testAuthority().issueServiceToken("operator")}` } });
    const ops = () => grpcClient(OpsService, url);

    before(async function () {
      server = createServer({
        port: 0,
        host: "127.0.0.1",
        logger: createLogger({ destination: { write: () => undefined }, recent: ring }),
        tokens: testAuthority(),
        metrics: createRpcMetrics({ defaultMetrics: false }),
      });
      server.register("echo", EchoService, createEchoService({ instance: "a" }));
      server.register("platform", OpsService, createOpsService({ server, topology, instance: "test/1", logs: ring }));
      url = `http://127.0.0.1:${(await server.listen()).port}`;
    });

    after(async function () {
      await server.drain();
    });

    it("answers only service tokens: a shopper's token is PERMISSION_DENIED, none is UNAUTHENTICATED", async function () {
      const user = (await testAuthority().issueUserToken("u1")).token;
      expect((await failureOf(ops().getSystemMap({}, { headers: { authorization: `Bearer ${user}` } }))).code).to.equal(Code.PermissionDenied);
      expect((await failureOf(ops().getSystemMap({}))).code).to.equal(Code.Unauthenticated);
    });

    it("maps the topology's services with their health and follows a change of health", async function () {
      const map = await ops().getSystemMap({}, await auth());
      const echo = map.services.find((s) => s.name === "echo")!;
      expect(echo).to.include({ state: ServingState.SERVING, replicas: 2, exposed: false, protoPackage: "mesh.testing.v1" });
      expect(echo.grpcServices.map((g) => [g.grpcService, g.state, g.instance])).to.deep.equal([["mesh.testing.v1.EchoService", ServingState.SERVING, "test/1"]]);
      // Served by no instance that answered: UNKNOWN, not an error.
      expect(map.services.find((s) => s.name === "front")).to.include({ state: ServingState.UNKNOWN, exposed: true });
      expect(map.instances.map((i) => [i.id, i.services])).to.deep.equal([["test/1", ["echo"]]]);

      server.health.set("mesh.testing.v1.EchoService", ServingStatus.NOT_SERVING);
      try {
        const after = await ops().getSystemMap({}, await auth());
        expect(after.services.find((s) => s.name === "echo")!.state).to.equal(ServingState.NOT_SERVING);
      } finally {
        server.health.set("mesh.testing.v1.EchoService", ServingStatus.SERVING);
      }
    });

    it("draws the declared calls with the calls seen, an undeclared call as a finding, and events from parent to consumer", async function () {
      const call = (caller: string) =>
        createClientFactory({ caller, tokens: server.tokens, routeFor: () => ({ kind: "in-process", lookup: server.route }) }).client(EchoService).echo({ message: caller });
      await call("front");
      await call("front");
      await call("rogue");
      // An event emitted by echo's handler and handled by front: a consumer span under echo's span.
      const emitter = tracer().startSpan("emit", { kind: OtelSpanKind.SERVER, attributes: { "shop.service": "echo" } });
      tracer().startSpan("consume mesh.testing.v1.Happened", { kind: OtelSpanKind.CONSUMER, attributes: { "shop.service": "front" } }, trace.setSpan(context.active(), emitter)).end();
      emitter.end();

      const { edges } = await ops().getSystemMap({}, await auth());
      const edge = (source: string, target: string, kind: EdgeKind) => edges.find((e) => e.source === source && e.target === target && e.kind === kind);
      expect(edge("front", "echo", EdgeKind.CALL)?.recentCount).to.be.at.least(2);
      expect(edge("rogue", "echo", EdgeKind.CALL)?.recentCount).to.be.at.least(1);
      expect(edge("echo", "front", EdgeKind.EVENT)?.recentCount).to.be.at.least(1);
    });

    it("counts per method the calls, errors by code, p99 and the contract's deadline", async function () {
      const echo = grpcClient(EchoService, url);
      for (let i = 0; i < 4; i++) await echo.echo({ message: "hi" });
      await failureOf(echo.fail({ code: Code.NotFound, message: "nope" }));
      const { methods, windowSeconds } = await ops().getMethodStats({ windowSeconds: 60 }, await auth());
      expect(windowSeconds).to.be.greaterThan(0).and.at.most(60);
      const fail = methods.find((m) => m.method === "Fail")!;
      expect(fail).to.include({ service: "echo", grpcService: "mesh.testing.v1.EchoService", errors: 1, errorRatio: 1, deadlineMs: 2000 });
      expect(fail.errorsByCode).to.deep.equal({ NOT_FOUND: 1 });
      const echoStats = methods.find((m) => m.method === "Echo")!;
      expect(echoStats.requests).to.be.at.least(4);
      expect(echoStats.p99Ms).to.be.greaterThan(0).and.below(1000);
      expect(echoStats.latencyBuckets.at(-1)).to.deep.include({ upperBoundSeconds: Infinity, count: echoStats.requests });
      // The console's own polling stays out of the list unless asked for.
      expect(methods.some((m) => m.grpcService === "mesh.v1.OpsService")).to.equal(false);
      const all = await ops().getMethodStats({ includePlatform: true }, await auth());
      expect(all.methods.some((m) => m.grpcService === "mesh.v1.OpsService")).to.equal(true);
    });

    it("lists recent traces newest first and gives one trace's spans, parents and offsets", async function () {
      const traceId = "0af7651916cd43dd8448eb211c80319c";
      const echo = grpcClient(EchoService, url);
      await echo.echo({ message: "traced" }, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
      await failureOf(echo.fail({ code: Code.Unavailable }, { headers: { traceparent: "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } }));

      const { traces } = await ops().listRecentTraces({ pageSize: 100 }, await auth());
      const mine = traces.find((t) => t.traceId === traceId)!;
      expect(mine).to.include({ rootName: "mesh.testing.v1.EchoService/Echo", rootService: "echo", spanCount: 1, error: false });
      expect(mine.services).to.deep.equal(["echo"]);
      expect(traces.find((t) => t.traceId === "1af7651916cd43dd8448eb211c80319c")?.error).to.equal(true);
      expect(traces.indexOf(mine)).to.be.greaterThan(traces.findIndex((t) => t.traceId === "1af7651916cd43dd8448eb211c80319c"));
      expect(traces.some((t) => t.rootService === "platform"), "the console's own calls are left out").to.equal(false);
      const errorsOnly = await ops().listRecentTraces({ errorsOnly: true, pageSize: 100 }, await auth());
      expect(errorsOnly.traces.every((t) => t.error)).to.equal(true);

      const { spans } = await ops().getTrace({ traceId }, await auth());
      expect(spans).to.have.length(1);
      // The browser's (or caller's) span is the parent: named, though not recorded here.
      expect(spans[0]).to.include({ parentSpanId: "b7ad6b7169203331", service: "echo", kind: SpanKind.SERVER, startOffsetMs: 0, error: false, instance: "test/1" });
      expect(spans[0].attributes["rpc.method"]).to.equal("Echo");

      const missing = await failureOf(ops().getTrace({ traceId: "f".repeat(32) }, await auth()));
      expect(missing.code).to.equal(Code.NotFound);
    });

    it("gives the log lines of one trace, as printed", async function () {
      const traceId = "2af7651916cd43dd8448eb211c80319c";
      await grpcClient(EchoService, url).echo({ message: "logged" }, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
      const { lines } = await ops().listLogLines({ traceId }, await auth());
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ level: "info", message: "rpc", service: "echo", traceId, instance: "test/1" });
      expect(JSON.parse(lines[0].json)).to.include({ method: "Echo", code: "OK", trace_id: traceId });
      const recent = await ops().listLogLines({ pageSize: 2 }, await auth());
      expect(recent.lines).to.have.length(2);
    });

    it("adds the call paths it is given to the map, asked for once; a failure answers INTERNAL and is asked for again", async function () {
      let asked = 0;
      const impl = createOpsService({
        server,
        topology,
        instance: "test/2",
        async callPaths() {
          if (++asked === 1) throw new Error("no descriptors for front");
          return {
            callPaths: [{ hops: [{ service: "front", method: "/mesh.front.v1.FrontService/Get", deadlineMs: 1000, budgetMs: 1000, attempts: 3 }], depth: 1, amplification: 3 }],
            callPathLimits: { maxDepth: 2, maxAmplification: 9, deadlineMarginMs: 200 },
          };
        },
      });
      const client = createClient(OpsService, createRouterTransport(({ service }) => service(OpsService, impl)));
      const failed = await failureOf(client.getSystemMap({}));
      expect([failed.code, failed.rawMessage]).to.deep.equal([Code.Internal, "the call paths of the contracts could not be computed: no descriptors for front"]);
      const map = await client.getSystemMap({});
      expect(map.callPaths.map((p) => [p.hops.map((h) => h.method), p.depth, p.amplification])).to.deep.equal([[["/mesh.front.v1.FrontService/Get"], 1, 3]]);
      expect(map.callPathLimits).to.include({ maxDepth: 2, maxAmplification: 9, deadlineMarginMs: 200 });
      await client.getSystemMap({});
      expect(asked).to.equal(2);
    });
  });

  describe("method stats from samples of the registry", function () {
    it("counts only what happened inside the window, over the time actually covered", async function () {
      let now = 1_000;
      const metrics = createRpcMetrics({ defaultMetrics: false });
      const sampler = createMethodStatsSampler({ registry: metrics.registry, now: () => now });
      for (let i = 0; i < 3; i++) metrics.start("a.v1.A", "Get")("OK");
      metrics.start("a.v1.A", "Get")("NOT_FOUND");
      now = 11_000;
      let w = await sampler.window(60);
      expect(w.seconds).to.equal(10);
      expect(w.methods[0]).to.deep.include({ grpcService: "a.v1.A", method: "Get", requests: 4, errors: 1, errorsByCode: { NOT_FOUND: 1 } });

      now = 71_000;
      metrics.start("a.v1.A", "Get")("OK");
      metrics.start("a.v1.A", "Get")("OK");
      w = await sampler.window(60);
      expect(w.seconds).to.equal(60);
      expect(w.methods[0]).to.deep.include({ requests: 2, errors: 0, errorsByCode: {} });
    });

    it("interpolates the p99 inside its bucket as histogram_quantile does", function () {
      expect(quantileFromBuckets(0.99, [0.1, 0.2, Infinity], [0, 100, 100])).to.be.closeTo(0.199, 1e-9);
      expect(quantileFromBuckets(0.5, [0.1, 0.2, Infinity], [50, 100, 100])).to.be.closeTo(0.1, 1e-9);
      // Beyond the last finite bound: that bound, as Prometheus answers.
      expect(quantileFromBuckets(0.99, [0.1, 0.2, Infinity], [0, 0, 10])).to.equal(0.2);
      expect(quantileFromBuckets(0.99, [0.1, Infinity], [0, 0])).to.equal(0);
    });
  });

  describe("the ring of log lines", function () {
    it("keeps the newest lines, as printed with sensitive values redacted, and the active span's ids", function () {
      installTracing();
      const ring = createLogRing(3);
      const logger = createLogger({ destination: { write: () => undefined }, recent: ring });
      for (let i = 0; i < 5; i++) logger.info({ i }, "line");
      expect(ring.lines().map((l) => (JSON.parse(l) as { i: number }).i)).to.deep.equal([2, 3, 4]);
      logger.info({ password: "hunter2" }, "secret");
      expect(ring.lines().at(-1)).to.include("[REDACTED]").and.not.include("hunter2");
      const span = tracer().startSpan("work");
      context.with(trace.setSpan(context.active(), span), () => logger.warn("inside a span"));
      span.end();
      expect(JSON.parse(ring.lines().at(-1)!)).to.include({ msg: "inside a span", trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
      expect(ring.lines(span.spanContext().traceId)).to.have.length(1);
    });
  });

  describe("merging instances (the mesh's console)", function () {
    it("adds up counts and recomputes the p99 from the merged buckets, never averages it", function () {
      const bounds = [0.01, 1, Infinity];
      const stats = (requests: number, errors: number, counts: number[], p99Ms: number) =>
        create(GetMethodStatsResponseSchema, {
          windowSeconds: 60,
          methods: [
            create(MethodStatsSchema, {
              service: "orders",
              grpcService: "shop.orders.v1.OrderService",
              method: "CreateOrder",
              requests,
              errors,
              requestsPerSecond: requests / 60,
              p99Ms,
              errorsByCode: errors ? { UNAVAILABLE: errors } : {},
              latencyBuckets: bounds.map((upperBoundSeconds, i) => ({ upperBoundSeconds, count: counts[i] })),
            }),
          ],
        });
      const merged = mergeMethodStats([stats(100, 0, [100, 100, 100], 9.9), stats(100, 10, [0, 100, 100], 990)]).methods[0];
      expect(merged).to.include({ requests: 200, errors: 10, errorRatio: 0.05 });
      expect(merged.errorsByCode).to.deep.equal({ UNAVAILABLE: 10 });
      expect(merged.requestsPerSecond).to.be.closeTo(200 / 60, 1e-9);
      // 198th of 200 calls: in the (0.01, 1] bucket, 98 of its 100 calls in.
      expect(merged.p99Ms).to.be.closeTo((0.01 + 0.99 * 0.98) * 1000, 1e-6);
    });

    it("joins the parts of one trace that several instances hold, rooted at the earliest", function () {
      const part = (startMs: number, durationMs: number, root: string, services: string[], spanCount: number, error: boolean) =>
        create(ListRecentTracesResponseSchema, {
          traces: [{ traceId: "t1", rootName: root, rootService: services[0], services, startedAt: timestampFromMs(startMs), durationMs, spanCount, error }],
        });
      const [t] = mergeTraceLists([part(1_010, 50, "consume OrderCreated", ["inventory"], 2, true), part(1_000, 20, "OrderService/CreateOrder", ["orders", "catalog"], 3, false)], 10);
      expect(t).to.include({ rootName: "OrderService/CreateOrder", rootService: "orders", durationMs: 60, spanCount: 5, error: true });
      expect(t.services).to.deep.equal(["orders", "catalog", "inventory"]);
    });

    it("answers for the whole mesh from every instance's OpsService, leaving out one that fails", async function () {
      const instance = (name: string, grpcService: string) => {
        const health = createHealthRegistry();
        health.set(grpcService, ServingStatus.SERVING);
        const impl = createOpsService({
          server: { health, metrics: createRpcMetrics({ defaultMetrics: false }), services: () => [] },
          topology: { services: { orders: { package: "shop.orders.v1", replicas: 2, port: 1, calls: [] } } },
          instance: name,
          spans: createRecentSpans(10),
          logs: createLogRing(10),
        });
        return createClient(OpsService, createRouterTransport(({ service }) => service(OpsService, impl)));
      };
      const down = createClient(OpsService, createRouterTransport(() => undefined));
      const mesh = createOpsAggregator([instance("orders-0", "shop.orders.v1.OrderService"), instance("orders-1", "shop.orders.v1.OrderService"), down]);
      const map = await createClient(OpsService, createRouterTransport(({ service }) => service(OpsService, mesh))).getSystemMap({});
      expect(map.instances.map((i) => i.id)).to.deep.equal(["orders-0", "orders-1"]);
      const orders = map.services.find((s) => s.name === "orders")!;
      expect(orders.state).to.equal(ServingState.SERVING);
      expect(orders.grpcServices.map((g) => g.instance)).to.deep.equal(["orders-0", "orders-1"]);
    });
  });
});
