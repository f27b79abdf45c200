// The OpenAPI document and the /api reference page (runner/openapi.ts,
// runner/api-reference.ts), held to what they promise: a structurally valid
// OpenAPI 3.1 document (checked here, field by field, without a validator
// package) with every unary method the edge exposes and nothing else, the
// proto3 JSON mapping, bearer auth exactly where the contract's audience asks
// for a token, and descriptions taken from the protos' comments; served by
// `make run` (runner/embedded.ts as a real process) with the security
// headers, and every curl example on the page run with real curl as printed,
// its answer checked against the document's own schemas. The edge reaches the
// same module: its generated routes send these paths to the edge backend.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import type { DescService } from "@bufbuild/protobuf";
import { contractOf, loadTopology } from "@shop/platform";
import { edgeServices, healthService, loadServiceDescriptors } from "../../envoy/contracts.ts";
import { edgeBackendCluster, SERVICE_HEADER } from "../../envoy/edge.ts";
import { generateConfigs } from "../../envoy/generate.ts";
import { documentedFileSet } from "../../platform/documented-descriptors.ts";
import { examplePaths } from "../../runner/api-examples.ts";
import { API_PATHS, EDGE_SERVICE_HEADER, loadEdgeApiDocument, renderApiReference, requestOrigin } from "../../runner/api-reference.ts";
import { commentIndex, refName, requestFromRules } from "../../runner/openapi.ts";
import type { Json, OpenApiDocument, Operation } from "../../runner/openapi.ts";
import { SECURITY_HEADERS } from "../../runner/security-headers.ts";
import { launchChromium, SCREENSHOTS } from "../browser/chromium.ts";
import { testAuthority } from "../support/keys.ts";
import { repoRoot, startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";
import { schemaErrors } from "./json-schema.ts";

const GRPCURL = join(repoRoot, "tools/bin/grpcurl");

function run(command: string, env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["-c", command], { env: { ...process.env, PATH: `${join(repoRoot, "tools/bin")}:${process.env.PATH}`, ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const unescapeHtml = (s: string) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");

/** The commands of the page's example blocks, in page order. */
function examplesOf(html: string): string[] {
  return [...html.matchAll(/<pre class="example"><code>([\s\S]*?)<\/code><\/pre>/g)].map((m) => unescapeHtml(m[1]));
}

/** Every $ref anywhere in the value. */
function refsIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => refsIn(v, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refsIn(v, out);
    }
  }
  return out;
}

describe("the OpenAPI document of the Connect JSON surface (runner/openapi.ts)", function () {
  let doc: OpenApiDocument;
  let services: DescService[];
  const comments = commentIndex(documentedFileSet());

  before(async function () {
    doc = await loadEdgeApiDocument();
    const topology = loadTopology();
    services = edgeServices(topology, await loadServiceDescriptors(topology));
  });

  it("is structurally OpenAPI 3.1: the required fields of every object, unique operation ids, resolvable $refs, declared security schemes and tags", function () {
    expect(doc.openapi).to.match(/^3\.1\.\d+$/);
    expect(doc.info.title).to.be.a("string").and.not.equal("");
    expect(doc.info.version).to.equal("v1");
    expect(doc.paths).to.be.an("object");
    const ids = new Set<string>();
    const tags = new Set(doc.tags.map((t) => t.name));
    for (const t of doc.tags) expect(t.name).to.be.a("string");
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path).to.match(/^\/[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/);
      expect(Object.keys(item)).to.deep.equal(["post"]);
      const op = item.post;
      expect(op.operationId, path).to.be.a("string");
      expect(ids.has(op.operationId), `operationId ${op.operationId} unique`).to.equal(false);
      ids.add(op.operationId);
      for (const t of op.tags) expect(tags.has(t), `tag ${t} declared`).to.equal(true);
      expect(op.responses, path).to.be.an("object").that.is.not.empty;
      for (const [status, response] of Object.entries(op.responses)) {
        expect(status).to.match(/^([1-5][0-9X]{2}|default)$/);
        expect((response as Json).description, `${path} ${status}`).to.be.a("string");
        for (const [type, media] of Object.entries(((response as Json).content ?? {}) as Record<string, Json>)) {
          expect(type).to.equal("application/json");
          expect(media.schema, `${path} ${status}`).to.be.an("object");
        }
      }
      expect(op.requestBody.content["application/json"].schema).to.be.an("object");
      for (const p of op.parameters) {
        expect(p.name, path).to.be.a("string");
        expect(["query", "header", "path", "cookie"]).to.include(p.in);
        expect(p.schema, `${path} ${String(p.name)}`).to.be.an("object");
      }
      for (const requirement of op.security ?? []) for (const name of Object.keys(requirement)) expect(doc.components.securitySchemes).to.have.property(name);
    }
    for (const scheme of Object.values(doc.components.securitySchemes)) {
      expect(scheme.type).to.equal("http");
      expect(scheme.scheme).to.equal("bearer");
    }
    for (const ref of refsIn(doc)) {
      expect(ref).to.match(/^#\/components\/schemas\//);
      expect(doc.components.schemas, ref).to.have.property(ref.slice("#/components/schemas/".length));
    }
    for (const key of Object.keys(doc.components.schemas)) expect(key).to.match(/^[a-zA-Z0-9.\-_]+$/);
    // It is plain JSON: what /openapi.json sends parses back to the same thing.
    expect(JSON.parse(JSON.stringify(doc))).to.deep.equal(doc);
  });

  it("has every unary method the edge exposes as POST /<package>.<Service>/<Method>, its streams under x-shop-streaming, and nothing the edge does not route", function () {
    const unary: string[] = [];
    const streams: string[] = [];
    for (const s of services) {
      for (const m of s.methods) {
        const path = `/${s.typeName}/${m.name}`;
        if (s === healthService && m.methodKind !== "unary") continue; // the edge answers Health/Watch UNIMPLEMENTED
        (m.methodKind === "unary" ? unary : streams).push(path);
      }
    }
    expect(Object.keys(doc.paths)).to.deep.equal(unary);
    expect(doc["x-shop-streaming"].map((s) => s.path)).to.deep.equal(streams);
    expect(unary).to.include("/shop.catalog.v1.CatalogService/SearchProducts");
    expect(streams).to.include("/shop.orders.v1.OrderService/WatchOrder");
    // payments is served by make run but not exposed at the edge: not public, not documented.
    expect(JSON.stringify(doc)).to.not.include("shop.payments.v1.PaymentService");
    expect(Object.keys(doc.paths).some((p) => p.startsWith("/grpc.health.v1.Health/Watch"))).to.equal(false);
  });

  it("asks for a bearer token exactly where the contract's audience is USER or SERVICE", function () {
    for (const s of services) {
      for (const m of s.methods.filter((x) => x.methodKind === "unary")) {
        const c = contractOf(m);
        const op = doc.paths[c.path].post;
        expect(op["x-shop-audience"], c.path).to.equal(c.audience);
        if (c.audience === "public") expect(op.security, c.path).to.equal(undefined);
        else expect(op.security, c.path).to.deep.equal([{ bearer: [] }]);
      }
    }
    expect(doc.paths["/shop.users.v1.UserService/Login"].post.security).to.equal(undefined);
    expect(doc.paths["/shop.orders.v1.OrderService/CreateOrder"].post.security).to.deep.equal([{ bearer: [] }]);
    expect(doc.paths["/shop.inventory.v1.InventoryService/ReserveStock"].post["x-shop-audience"]).to.equal("service");
  });

  it("takes its descriptions from the protos' comments: services, methods, messages, fields and enum values", function () {
    const schemas = doc.components.schemas;
    let described = 0;
    for (const [path, { post }] of Object.entries(doc.paths)) {
      const comment = comments.get(path.slice(1).replace("/", "."));
      if (comment) {
        expect(post.description.startsWith(comment), path).to.equal(true);
        described++;
      }
    }
    expect(described, "methods with a comment").to.be.greaterThan(20);
    expect(doc.paths["/shop.catalog.v1.CatalogService/SearchProducts"].post.description).to.include("Case-insensitive match on name, description and category.");
    expect(doc.tags.find((t) => t.name === "shop.orders.v1.OrderService")!.description).to.include("A user sees only their own");
    expect(schemas["shop.common.v1.Money"].description).to.equal("An amount of money in integer minor units (cents), never floating point.");
    const listProducts = schemas["shop.catalog.v1.ListProductsRequest"].properties as Record<string, Json>;
    expect(listProducts.pageSize.description).to.equal("At most 100; 0 means 20.");
    expect((schemas["shop.orders.v1.OrderStatus"]["x-enumDescriptions"] as Record<string, string>).ORDER_STATUS_CONFIRMED).to.equal("Stock committed and payment captured. Final.");
    // Every field comment of every documented message reached its property.
    for (const [name, schema] of Object.entries(schemas)) {
      for (const [json, property] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
        const protoName = [...comments.keys()].find((k) => k.startsWith(`${name}.`) && k.slice(name.length + 1).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) === json);
        if (protoName) expect(String(property.description), `${name}.${json}`).to.include(comments.get(protoName)!);
      }
    }
  });

  it("follows the proto3 JSON mapping: jsonName keys, int64 as strings, enums by name, Timestamps as RFC 3339, rules as constraints", function () {
    const schemas = doc.components.schemas;
    const prop = (message: string, field: string) => (schemas[message].properties as Record<string, Json>)[field];
    expect(prop("shop.orders.v1.CreateOrderRequest", "idempotencyKey")).to.include({ type: "string", minLength: 1, maxLength: 128 });
    expect(schemas["shop.orders.v1.CreateOrderRequest"].required).to.deep.equal(["idempotencyKey", "items", "paymentMethod"]);
    expect(prop("shop.common.v1.Money", "unitsMinor")).to.include({ type: "string", format: "int64" });
    expect(prop("shop.orders.v1.Order", "status")).to.deep.equal({ $ref: "#/components/schemas/shop.orders.v1.OrderStatus" });
    expect(schemas["shop.orders.v1.OrderStatus"]).to.include({ type: "string" });
    expect(schemas["shop.orders.v1.OrderStatus"].enum).to.include("ORDER_STATUS_CANCELLED");
    expect(refName(prop("shop.orders.v1.Order", "createdAt"))).to.equal("google.protobuf.Timestamp");
    expect(schemas["google.protobuf.Timestamp"]).to.include({ type: "string", format: "date-time" });
    expect(schemas, "only what an exposed method reaches").to.not.have.property("mesh.v1.EventEnvelope");
    expect(prop("mesh.v1.Span", "attributes")).to.deep.include({ type: "object", additionalProperties: { type: "string" } });
    expect(prop("shop.catalog.v1.GetProductRequest", "sku")).to.include({ pattern: "^[a-z0-9]+(-[a-z0-9]+)*$", maxLength: 64 });
    expect(prop("shop.users.v1.SignUpRequest", "email")).to.include({ format: "email" });
    expect(prop("shop.orders.v1.GetOrderRequest", "orderId")).to.include({ format: "uuid" });
    expect(prop("shop.catalog.v1.ListProductsRequest", "pageSize")).to.include({ type: "integer", minimum: 0, maximum: 100 });
    expect(String(prop("shop.users.v1.LoginResponse", "token").description)).to.include("Sensitive");
    const error = schemas["connect.error"];
    expect(error.required).to.deep.equal(["code"]);
    expect((error.properties as Record<string, Json>).code.enum).to.include.members(["unauthenticated", "invalid_argument", "not_found"]);
    for (const { post } of Object.values(doc.paths)) expect(post.responses.default).to.deep.nested.include({ "content.application/json.schema": { $ref: "#/components/schemas/connect.error" } });
  });

  it("gives every method an example its request schema accepts, written for all but none missing", function () {
    const schemas = doc.components.schemas;
    for (const [path, { post }] of Object.entries(doc.paths)) {
      const media = post.requestBody.content["application/json"];
      expect(schemaErrors(media.example, media.schema, schemas), path).to.deep.equal([]);
    }
    // A made-up request from the field rules passes them too.
    for (const s of services) {
      for (const m of s.methods.filter((x) => x.methodKind === "unary")) {
        const c = contractOf(m);
        const schema = doc.paths[c.path].post.requestBody.content["application/json"].schema;
        expect(schemaErrors(requestFromRules(m.input), schema, schemas), `${c.path} from its rules`).to.deep.equal([]);
      }
    }
    // Every written example names a documented method (a renamed method leaves none behind).
    const documented = new Set([...Object.keys(doc.paths), ...doc["x-shop-streaming"].map((s) => s.path)]);
    for (const path of examplePaths()) expect(documented.has(path), path).to.equal(true);
  });

  it("names the edge's service header as envoy/edge.ts does", function () {
    expect(EDGE_SERVICE_HEADER).to.equal(SERVICE_HEADER);
  });

  it("is reached through the edge: its generated routes send GET and HEAD of /openapi.json, /api and /api.css to the edge backend (which serves runner/web-app.ts)", async function () {
    for (const reflection of [true, false]) {
      const config = (await generateConfigs({ target: "local", reflection })).find((c) => c.kind === "edge")!.config as Record<string, any>;
      const listener = config.static_resources.listeners.find((l: Json) => l.name === "edge");
      const routes: Array<Record<string, any>> = listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
      for (const path of Object.values(API_PATHS)) {
        for (const method of ["GET", "HEAD"]) {
          // The first route whose path matches and whose header matches hold for a plain browser GET.
          const route = routes.find((r) => {
            const m = r.match;
            if (m.path !== undefined ? m.path !== path : !path.startsWith(m.prefix)) return false;
            if (m.grpc) return false;
            return (m.headers ?? []).every((h: Record<string, any>) => (h.name === ":method" ? new RegExp(h.string_match.safe_regex.regex).test(method) : h.present_match && h.invert_match));
          });
          expect(route?.name, `${method} ${path}`).to.equal("web-app");
          expect(route?.route?.cluster).to.equal(edgeBackendCluster(reflection));
        }
      }
    }
  });
});

describe("the API reference page and /openapi.json served by make run (runner/embedded.ts)", function () {
  this.timeout(120_000);
  let server: ServerProcess;
  let doc: OpenApiDocument;
  let html: string;

  before(async function () {
    server = await startServerProcess("runner/embedded.ts", { DATA_DIR: ":memory:", HOST: "127.0.0.1", LOG_LEVEL: "info" }, 30_000);
    const res = await fetch(`${server.url}/openapi.json`);
    doc = (await res.json()) as OpenApiDocument;
    html = await (await fetch(`${server.url}/api`)).text();
  });

  after(async function () {
    await server?.stop();
  });

  it("serves /openapi.json, /api and /api.css with the security headers, content types, and an ETag to revalidate", async function () {
    for (const [path, type] of [
      ["/openapi.json", "application/json; charset=utf-8"],
      ["/api", "text/html; charset=utf-8"],
      ["/api.css", "text/css; charset=utf-8"],
    ]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).to.equal(200);
      expect(res.headers.get("content-type"), path).to.equal(type);
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name), `${path} ${name}`).to.equal(value);
      const etag = res.headers.get("etag")!;
      expect((await fetch(`${server.url}${path}`, { headers: { "if-none-match": etag } })).status, path).to.equal(304);
      const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
      expect(head.status).to.equal(200);
      expect(await head.text()).to.equal("");
    }
    expect(doc).to.deep.equal(JSON.parse(JSON.stringify(await loadEdgeApiDocument())));
    expect((await fetch(`${server.url}/openapi.json`, { method: "POST", body: "{}" })).status).to.not.equal(200);
  });

  it("renders the page on the server from the document: no script, no <style> element, one same-origin stylesheet, every method with its description and fields", function () {
    expect(html).to.match(/^<!doctype html>/);
    expect(html).to.not.match(/<script/i);
    expect(html).to.not.match(/<style/i);
    expect(html).to.not.match(/\son[a-z]+=/i); // no inline event handlers either
    expect([...html.matchAll(/<link rel="stylesheet" href="([^"]+)">/g)].map((m) => m[1])).to.deep.equal(["/api.css"]);
    const text = unescapeHtml(html.replace(/<\/?(code|a)\b[^>]*>/g, "").replace(/<[^>]+>/g, " ")).replace(/\s+/g, " ");
    for (const [path, { post }] of Object.entries(doc.paths)) {
      expect(html, path).to.include(`<code>${path}</code>`);
      // The whole description, as text: the comment, then the contract in words.
      expect(text, `${path} description`).to.include(post.description.replace(/`/g, "").replace(/\s+/g, " "));
    }
    for (const s of doc["x-shop-streaming"]) expect(html, s.path).to.include(`<code>${s.path}</code>`);
    // Field tables with the fields' comments and rules.
    expect(html).to.include("<code>pageSize</code>");
    expect(html).to.include("At most 100; 0 means 20.");
    expect(text).to.include('required; at most 64 characters; one of "pm_card_ok", "pm_card_declined", "pm_card_insufficient_funds"');
    expect(html).to.include('id="shop.orders.v1.OrderStatus"');
    expect(html).to.include("Stock committed and payment captured. Final.");
  });

  it("prints a curl example per unary method (and a grpcurl one per stream) for the origin asked for", function () {
    const examples = examplesOf(html);
    for (const path of Object.keys(doc.paths)) {
      expect(examples.filter((e) => e.startsWith("curl ") && e.endsWith(`${server.url}${path}`)), path).to.have.length(1);
    }
    expect(examples.some((e) => e.startsWith("grpcurl ") && e.endsWith("shop.orders.v1.OrderService/WatchOrder"))).to.equal(true);
    expect(examples).to.include(`curl -s -H 'content-type: application/json' -d '{"query":"tea"}' ${server.url}/shop.catalog.v1.CatalogService/SearchProducts`);
    // Another Host (a proxy, the edge): the examples follow it; a malformed one is not echoed.
    const page = renderApiReference(doc, "https://shop.example.com");
    expect(page).to.include("https://shop.example.com/shop.catalog.v1.CatalogService/SearchProducts");
    const origin = (headers: Record<string, string>) => requestOrigin({ headers } as unknown as Parameters<typeof requestOrigin>[0], "localhost:8080");
    expect(origin({ host: "shop.example.com", "x-forwarded-proto": "https" })).to.equal("https://shop.example.com");
    expect(origin({ host: "[::1]:8080" })).to.equal("http://[::1]:8080");
    expect(origin({ ":authority": "127.0.0.1:8080" }), "HTTP/2, as from the edge").to.equal("http://127.0.0.1:8080");
    expect(origin({ host: "x'; rm -rf ~; '" })).to.equal("http://localhost:8080");
    expect(origin({ host: "a.example\"><b>", "x-forwarded-proto": "javascript" })).to.equal("http://localhost:8080");
  });

  it("runs every example as printed: without a token those that need one answer unauthenticated, with one (and for all others) what the page says, in the document's schemas", async function () {
    const examples = examplesOf(html);
    const schemas = doc.components.schemas;
    const operator = await testAuthority().issueServiceToken("operator");
    const loginLine = examples.find((e) => e.startsWith("TOKEN=$("));
    expect(loginLine, "the page shows how to get a user token").to.be.a("string");
    let userToken: string | undefined;
    let ran = 0;
    for (const command of examples) {
      if (command.startsWith("TOKEN=$(")) continue;
      if (command.startsWith("grpcurl ")) {
        if (!existsSync(GRPCURL)) continue;
        const { stdout, stderr } = await run(command, { TOKEN: userToken ?? "" });
        if (command.endsWith(" list")) expect(stdout).to.include("shop.catalog.v1.CatalogService");
        else expect(stderr, command).to.include("Code: NotFound");
        ran++;
        continue;
      }
      const path = new URL(command.split(" ").pop()!).pathname;
      const op: Operation = doc.paths[path].post;
      const answer = op["x-shop-example"]!;
      const needsToken = op.security !== undefined;
      expect(command.includes('"authorization: Bearer $TOKEN"'), `${path} shows the token placeholder`).to.equal(needsToken);
      if (needsToken) {
        const { stdout } = await run(command, { TOKEN: undefined });
        expect(JSON.parse(stdout), `${path} without a token`).to.deep.include({ code: "unauthenticated" });
        if (op["x-shop-audience"] === "user" && userToken === undefined) {
          userToken = (await run(`${loginLine}; printf %s "$TOKEN"`, {})).stdout;
          expect(userToken, "the Login line sets TOKEN").to.match(/^[\w-]+\.[\w-]+\.[\w-]+$/);
        }
      }
      const token = op["x-shop-audience"] === "service" ? operator : userToken;
      const { code, stdout, stderr } = await run(command, needsToken ? { TOKEN: token } : {});
      expect(code, `${command}: ${stderr}`).to.equal(0);
      let body: Json;
      try {
        body = JSON.parse(stdout) as Json;
      } catch {
        throw new Error(`${path}: not JSON: ${stdout}`);
      }
      if (answer.answers === "any") {
        // An example made from the rules (no written one): JSON, and an error only in the Connect body.
        if ("code" in body) expect(schemaErrors(body, { $ref: "#/components/schemas/connect.error" }, schemas), path).to.deep.equal([]);
      } else if (answer.answers === "ok") {
        expect(body, path).to.not.have.property("code");
        const schema = (op.responses["200"].content as Record<string, { schema: Json }>)["application/json"].schema;
        expect(schemaErrors(body, schema, schemas), `${path} answer ${stdout}`).to.deep.equal([]);
      } else {
        expect(body.code, `${path}: ${stdout}`).to.equal(answer.answers);
        expect(schemaErrors(body, { $ref: "#/components/schemas/connect.error" }, schemas), path).to.deep.equal([]);
      }
      ran++;
    }
    expect(ran).to.be.at.least(Object.keys(doc.paths).length);
  });

  it("loads in Chromium without a CSP violation, styled by /api.css", async function () {
    const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
    if (!existsSync(chromium)) this.skip();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const violations: string[] = [];
      page.on("console", (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      const failed: string[] = [];
      page.on("requestfailed", (r) => failed.push(r.url()));
      await page.goto(`${server.url}/api`, { waitUntil: "load" });
      expect(await page.title()).to.include("reference");
      // The stylesheet applied: the body is a grid, as /api.css says.
      expect(await page.evaluate(() => getComputedStyle(document.body).display)).to.equal("grid");
      await page.screenshot({ path: join(SCREENSHOTS, "api-reference.png") });
      expect(violations).to.deep.equal([]);
      expect(failed).to.deep.equal([]);
    } finally {
      await browser.close();
    }
  });
});
