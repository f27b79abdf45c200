// The public API's documentation over HTTP GET, for `make run` and (through
// the same web-app module) the edge backend: /openapi.json, the OpenAPI 3.1
// document of the Connect JSON surface (runner/openapi.ts) of exactly the
// services the edge exposes (envoy/contracts.ts edgeServices()), and /api, a
// reference page rendered from that document on the server. The page has no
// script at all and no <style> element: its look comes from /api.css (same
// origin) so that the browser app's CSP (runner/security-headers.ts), sent
// with all three, holds. Every curl line on the page is a complete command
// for this origin as the request named it (Host, x-forwarded-proto), run by
// test/contracts/openapi.test.ts with real curl.
import { createHash } from "node:crypto";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { loadTopology } from "@shop/platform";
import type { HttpFallback, Logger } from "@shop/platform";
import { edgeServices, healthService, instanceAdminServices, loadServiceDescriptors } from "../envoy/contracts.ts";
import { documentedFileSet } from "../platform/documented-descriptors.ts";
import { exampleAt } from "./api-examples.ts";
import { buildOpenApi, commentIndex, CONNECT_CODES, refName } from "./openapi.ts";
import type { Json, OpenApiDocument, Operation, StreamingMethod } from "./openapi.ts";
import { SECURITY_HEADERS } from "./security-headers.ts";

/**
 * The header by which the edge picks the service that answers health and the
 * per-instance admin RPCs. The same as envoy/edge.ts SERVICE_HEADER (a test
 * holds them equal); not imported from there because the image carries only
 * envoy/contracts.ts, ports.ts and mtls.ts.
 */
export const EDGE_SERVICE_HEADER = "x-shop-service";

export const API_PATHS = { document: "/openapi.json", page: "/api", css: "/api.css" } as const;

const serviceHeader = (topologyNames: readonly string[], forHealth: boolean): Json => ({
  name: EDGE_SERVICE_HEADER,
  in: "header",
  required: false,
  description: forHealth
    ? `At the edge: the topology service whose instances answer (${topologyNames.join(", ")}); without it the edge answers invalid_argument. make run answers for the whole process and ignores it.`
    : `At the edge: the topology service whose instances answer (${topologyNames.join(", ")}); without it, the whole mesh answers (the edge backend merges every instance). make run ignores it.`,
  schema: { type: "string", enum: [...topologyNames] },
});

/**
 * The document of what the edge exposes: topology.json's edge services, health
 * (Check and List: the edge does not route Watch), the admin services, and
 * reflection (a bidirectional stream, so listed, not a path).
 */
export async function loadEdgeApiDocument(): Promise<OpenApiDocument> {
  const topology = loadTopology();
  const services = edgeServices(topology, await loadServiceDescriptors(topology));
  const names = Object.keys(topology.services);
  const admin = new Set<DescService>([healthService, ...instanceAdminServices]);
  return buildOpenApi(services, {
    title: "Shop API (Connect JSON)",
    description: [
      "The services the edge exposes (topology.json's `edge.exposes`, with health, the operators' admin services and reflection), generated from proto/ by runner/openapi.ts: every unary method as `POST /<package>.<Service>/<Method>` with a proto3 JSON body.",
      "Field names are the proto3 JSON names (lowerCamelCase; the proto names are accepted too). 64-bit integers are decimal strings, enums their value names, timestamps RFC 3339 strings, bytes base64. Fields at their default value are left out of answers.",
      "Send `content-type: application/json`. Methods with a security requirement need `authorization: Bearer <token>`: a user token from shop.users.v1.UserService/Login, or for service-only methods a service token (`make token`). Errors are the Connect error body (connect.error) with the HTTP status of its code.",
      "Server-streaming methods are not paths here: a Connect stream is a sequence of enveloped messages (application/connect+json), not one JSON body. They are listed under `x-shop-streaming`; call them with a Connect, gRPC-Web or gRPC client (grpcurl).",
      "The same services answer gRPC and gRPC-Web, and Connect with binary protobuf (application/proto), on the same port.",
    ].join("\n\n"),
    comments: commentIndex(documentedFileSet()),
    include: (m: DescMethod) => !(m.parent === healthService && m.methodKind !== "unary"),
    headersFor: (s) => (admin.has(s) ? [serviceHeader(names, s === healthService)] : []),
    exampleFor: (m) => exampleAt(`/${m.parent.typeName}/${m.name}`),
  });
}

// ---------------------------------------------------------------------------
// The page

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** Plain text with `code` spans and "- " lists, into paragraphs. */
function prose(text: string | undefined): string {
  if (!text) return "";
  const inline = (s: string) => escapeHtml(s).replace(/`([^`]+)`/g, "<code>$1</code>");
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const lines = block.split("\n");
      if (lines.every((l) => l.startsWith("- "))) return `<ul>${lines.map((l) => `<li>${inline(l.slice(2))}</li>`).join("")}</ul>`;
      return `<p>${inline(lines.join(" "))}</p>`;
    })
    .join("");
}

/** A shell word: single-quoted unless it needs no quoting. */
const shellQuote = (s: string) => (/^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

/** The curl command of one unary call: content-type, the token as $TOKEN when the method needs one, the JSON body. */
export function curlCommand(origin: string, path: string, body: unknown, options: { token: boolean; headers?: Readonly<Record<string, string>> }): string {
  const parts = ["curl", "-s", "-H", shellQuote("content-type: application/json")];
  if (options.token) parts.push("-H", '"authorization: Bearer $TOKEN"');
  for (const [name, value] of Object.entries(options.headers ?? {})) parts.push("-H", shellQuote(`${name}: ${value}`));
  parts.push("-d", shellQuote(JSON.stringify(body)), `${origin}${path}`);
  return parts.join(" ");
}

function grpcurlCommand(origin: string, stream: StreamingMethod): string {
  const url = new URL(origin);
  const address = url.port ? url.host : `${url.hostname}:${url.protocol === "https:" ? 443 : 80}`;
  const tls = url.protocol === "https:" ? [] : ["-plaintext"];
  if (stream.kind === "bidi_streaming" && stream.service.startsWith("grpc.reflection.")) return ["grpcurl", ...tls, address, "list"].join(" ");
  const parts = ["grpcurl", ...tls];
  if (stream.audience !== "public") parts.push("-H", '"authorization: Bearer $TOKEN"');
  parts.push("-d", shellQuote(JSON.stringify(stream.example?.body ?? {})), address, `${stream.service}/${stream.method}`);
  return parts.join(" ");
}

interface Ctx {
  readonly doc: OpenApiDocument;
  readonly schemas: Record<string, Json>;
  /** Every component the page shows in its types section, in the order first linked. */
  readonly linked: Set<string>;
}

function typeLabel(schema: Json, ctx: Ctx): string {
  const ref = refName(schema);
  if (ref) {
    ctx.linked.add(ref);
    return `<a href="#${escapeHtml(ref)}"><code>${escapeHtml(ref.split(".").pop()!)}</code></a>`;
  }
  if (schema.type === "array") return `list of ${typeLabel((schema.items ?? {}) as Json, ctx)}`;
  if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
    return `map of ${typeLabel(schema.additionalProperties as Json, ctx)}`;
  }
  const format = typeof schema.format === "string" && !["email", "uuid"].includes(schema.format) ? ` (${schema.format})` : "";
  const encoding = schema.contentEncoding === "base64" ? " (base64)" : "";
  // ["number", "string"]: a double, whose non-finite values are strings.
  const type = Array.isArray(schema.type) ? schema.type[0] : (schema.type ?? "any");
  return `<code>${escapeHtml(String(type))}</code>${escapeHtml(format + encoding)}`;
}

/** The JSON Schema constraints of a field in words: what the server's field rules check. */
export function constraintWords(schema: Json, required: boolean): string[] {
  const out: string[] = [];
  const value = schema.type === "array" ? ((schema.items ?? {}) as Json) : schema;
  if (required) out.push(schema.type === "array" ? "required: at least one" : "required");
  if (typeof schema.maxItems === "number") out.push(`at most ${schema.maxItems} items`);
  if (typeof value.minLength === "number" && value.minLength > 1) out.push(`at least ${value.minLength} characters`);
  if (typeof value.maxLength === "number") out.push(`at most ${value.maxLength} characters`);
  if (value.format === "email") out.push("an email address");
  if (value.format === "uuid") out.push("a UUID");
  if (value.pattern === "^[a-z0-9]+(-[a-z0-9]+)*$") out.push("lowercase letters, digits and dashes");
  if (Array.isArray(value.enum) && value.type === "string" && refName(value) === undefined) out.push(`one of ${value.enum.filter((v) => v !== "").map((v) => JSON.stringify(v)).join(", ")}`);
  if (typeof value.minimum === "number" && typeof value.maximum === "number") out.push(`${value.minimum} to ${value.maximum}`);
  else if (typeof value.minimum === "number" && value.minimum !== 0) out.push(`at least ${value.minimum}`);
  else if (typeof value.maximum === "number") out.push(`at most ${value.maximum}`);
  if (value.not && required && schema.type !== "array") out[0] = "required (non-zero)";
  if (schema.deprecated) out.push("deprecated");
  return out;
}

function fieldTable(typeName: string, ctx: Ctx): string {
  const schema = ctx.schemas[typeName];
  const properties = (schema?.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema?.required ?? []) as string[]);
  const names = Object.keys(properties);
  if (names.length === 0) return `<p class="none">No fields: send <code>{}</code>.</p>`;
  const rows = names.map((name) => {
    const p = properties[name];
    const rules = constraintWords(p, required.has(name));
    return `<tr><td><code>${escapeHtml(name)}</code></td><td>${typeLabel(p, ctx)}</td><td>${rules.length ? `<p class="rules">${escapeHtml(rules.join("; "))}</p>` : ""}${prose(p.description as string | undefined)}</td></tr>`;
  });
  return `<table><thead><tr><th>field</th><th>type</th><th>description</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function answerWords(op: Operation): string {
  const ex = op["x-shop-example"];
  const answers = ex?.answers ?? "any";
  const result =
    answers === "ok" ? "HTTP 200 with a JSON response" : answers === "any" ? "JSON: a response or a Connect error" : `the Connect error <code>${escapeHtml(answers)}</code>`;
  const token = op.security ? ` With <code>$TOKEN</code> set it answers ${result}; without a token, <code>unauthenticated</code> (HTTP 401).` : ` It answers ${result}.`;
  return `<p class="answer">${token.trim()}${ex?.note ? ` ${escapeHtml(ex.note)}` : ""}</p>`;
}

function badges(audience: string, idempotency: string | undefined, deadlineMs: number | undefined, deprecated: boolean): string {
  const list = [
    audience === "public" ? "public" : audience === "user" ? "token: user" : "token: service",
    idempotency === "NO_SIDE_EFFECTS" ? "read-only" : idempotency === "IDEMPOTENT" ? "idempotent" : idempotency ? "not idempotent" : undefined,
    deadlineMs !== undefined ? `deadline ${deadlineMs} ms` : undefined,
    deprecated ? "deprecated" : undefined,
  ].filter((b): b is string => b !== undefined);
  return `<p class="badges">${list.map((b) => `<span class="badge">${escapeHtml(b)}</span>`).join(" ")}</p>`;
}

const anchor = (path: string) => `m-${path.slice(1).replace("/", "-")}`;

/** The reference page of the document, its examples for this origin ("http://127.0.0.1:8080"). */
export function renderApiReference(doc: OpenApiDocument, origin: string): string {
  const ctx: Ctx = { doc, schemas: doc.components.schemas, linked: new Set() };
  const operations = Object.entries(doc.paths).map(([path, item]) => ({ path, op: item.post }));
  const byTag = new Map<string, Array<{ path: string; op?: Operation; stream?: StreamingMethod }>>();
  for (const t of doc.tags) byTag.set(t.name, []);
  for (const o of operations) byTag.get(o.op.tags[0])?.push(o);
  for (const s of doc["x-shop-streaming"]) byTag.get(s.service)?.push({ path: s.path, stream: s });

  const login = operations.find((o) => o.path === "/shop.users.v1.UserService/Login");
  const loginLine = login
    ? `TOKEN=$(${curlCommand(origin, login.path, login.op.requestBody.content["application/json"].example, { token: false })} | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')`
    : undefined;

  const nav = [...byTag].map(([tag, items]) => `<li><a href="#${escapeHtml(tag)}">${escapeHtml(tag)}</a><ul>${items.map((i) => `<li><a href="#${anchor(i.path)}">${escapeHtml(i.path.split("/")[2])}</a>${i.stream ? " (stream)" : ""}</li>`).join("")}</ul></li>`).join("");

  const sections = [...byTag].map(([tag, items]) => {
    const t = doc.tags.find((x) => x.name === tag);
    const methods = items.map((item) => {
      if (item.op) {
        const op = item.op;
        const reqRef = refName(op.requestBody.content["application/json"].schema)!;
        const resRef = refName((op.responses["200"].content as Record<string, { schema: Json }>)["application/json"].schema)!;
        const example = curlCommand(origin, item.path, op.requestBody.content["application/json"].example, { token: op.security !== undefined, headers: op["x-shop-example"]?.headers });
        return `<article class="method" id="${anchor(item.path)}">
<h3><span class="verb">POST</span> <code>${escapeHtml(item.path)}</code></h3>
${badges(op["x-shop-audience"], op["x-shop-idempotency"], op["x-shop-deadline-ms"], op.deprecated === true)}
${prose(op.description)}
<h4>Request: <a href="#${escapeHtml(reqRef)}"><code>${escapeHtml(reqRef)}</code></a></h4>
${fieldTable(reqRef, ctx)}
<h4>Response: <a href="#${escapeHtml(resRef)}"><code>${escapeHtml(resRef)}</code></a></h4>
${fieldTable(resRef, ctx)}
<h4>Example</h4>
<pre class="example"><code>${escapeHtml(example)}</code></pre>
${answerWords(op)}
</article>`;
      }
      const s = item.stream!;
      const reqRef = refName(s.request);
      const resRef = refName(s.response);
      const kind = s.kind === "server_streaming" ? "server stream" : s.kind === "bidi_streaming" ? "bidirectional stream" : "client stream";
      return `<article class="method stream" id="${anchor(item.path)}">
<h3><span class="verb">${escapeHtml(kind)}</span> <code>${escapeHtml(item.path)}</code></h3>
${badges(s.audience, undefined, s.deadlineMs, false)}
${prose(s.description)}
<p class="answer">Not in /openapi.json: a Connect stream is a sequence of enveloped messages (<code>application/connect+json</code>), not one JSON body. Call it with a Connect or gRPC-Web client (the browser app uses <code>@connectrpc/connect-web</code>) or with gRPC, for example grpcurl:</p>
${reqRef ? `<h4>Request: <a href="#${escapeHtml(reqRef)}"><code>${escapeHtml(reqRef)}</code></a></h4>${fieldTable(reqRef, ctx)}` : ""}
${resRef ? `<h4>Each message: <a href="#${escapeHtml(resRef)}"><code>${escapeHtml(resRef)}</code></a></h4>${fieldTable(resRef, ctx)}` : ""}
<h4>Example (grpcurl)</h4>
<pre class="example"><code>${escapeHtml(grpcurlCommand(origin, s))}</code></pre>
${s.example?.note ? `<p class="answer">${escapeHtml(s.example.note)}</p>` : ""}
</article>`;
    });
    return `<section class="service" id="${escapeHtml(tag)}"><h2>${escapeHtml(tag)}</h2>${prose(t?.description)}${methods.join("\n")}</section>`;
  });

  // Every message and enum a table links to, and what those link to, in the order first linked.
  const types: string[] = [];
  const shown = new Set<string>();
  for (let again = true; again; ) {
    again = false;
    for (const name of [...ctx.linked]) {
      if (shown.has(name)) continue;
      shown.add(name);
      again = true;
      const schema = ctx.schemas[name] ?? {};
      if (Array.isArray(schema.enum) && schema.type === "string") {
        const descriptions = (schema["x-enumDescriptions"] ?? {}) as Record<string, string>;
        const rows = (schema.enum as string[]).map((v) => `<tr><td><code>${escapeHtml(v)}</code></td><td>${prose(descriptions[v])}</td></tr>`).join("");
        types.push(`<article class="type" id="${escapeHtml(name)}"><h3>enum <code>${escapeHtml(name)}</code></h3>${prose(schema.description as string | undefined)}<table><thead><tr><th>value</th><th>description</th></tr></thead><tbody>${rows}</tbody></table></article>`);
      } else if (schema.type === "object" && schema.properties) {
        types.push(`<article class="type" id="${escapeHtml(name)}"><h3>message <code>${escapeHtml(name)}</code></h3>${prose(schema.description as string | undefined)}${fieldTable(name, ctx)}</article>`);
      } else {
        types.push(`<article class="type" id="${escapeHtml(name)}"><h3><code>${escapeHtml(name)}</code></h3><p>In JSON: ${typeLabel(schema, ctx)}.</p>${prose(schema.description as string | undefined)}</article>`);
      }
    }
  }

  const codes = CONNECT_CODES.map(([code, status]) => `<tr><td><code>${code}</code></td><td>${status}</td></tr>`).join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(doc.info.title)}: reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${API_PATHS.css}">
</head>
<body>
<header>
<h1>${escapeHtml(doc.info.title)}</h1>
<p>Generated from the contracts in <code>proto/</code> and their comments, as is the machine-readable <a href="${API_PATHS.document}">OpenAPI 3.1 document</a> this page is rendered from. Base URL: <code>${escapeHtml(origin)}</code>.</p>
</header>
<nav><h2>Services</h2><ul>${nav}<li><a href="#types">Messages and enums</a></li><li><a href="#errors">Errors</a></li></ul></nav>
<main>
<section id="calling">
<h2>Calling the API</h2>
${prose(doc.info.description)}
<p>Every example below is one complete command. Those marked <span class="badge">token: user</span> read the token from <code>$TOKEN</code>; set it by logging in (after the SignUp example):</p>
${loginLine ? `<pre class="example"><code>${escapeHtml(loginLine)}</code></pre>` : ""}
<p>Those marked <span class="badge">token: service</span> take a service token: <code>TOKEN=$(make -s token)</code> in the repository (an operator token, valid 10 minutes; <code>make token MESH=1</code> for <code>make mesh</code>).</p>
</section>
${sections.join("\n")}
<section id="types"><h2>Messages and enums</h2>${types.join("\n")}</section>
<section id="errors">
<h2>Errors</h2>
${prose((ctx.schemas["connect.error"]?.description as string | undefined)?.split("\n\n")[0])}
${fieldTable("connect.error", ctx)}
<table><thead><tr><th>code</th><th>HTTP status</th></tr></thead><tbody>${codes}</tbody></table>
</section>
</main>
</body>
</html>
`;
}

/** The page's stylesheet, served at /api.css. */
export const API_CSS = `:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --code: #f3f4f7; --accent: #7a3e12; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ee; --muted: #a4abba; --line: #363c49; --code: #20242d; --accent: #f0a36b; } }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, sans-serif; color: var(--fg); margin: 0; display: grid; grid-template-columns: 17rem 1fr; grid-template-areas: "head head" "nav main"; }
header { grid-area: head; padding: 1rem 2rem; border-bottom: 1px solid var(--line); }
nav { grid-area: nav; padding: 1rem; border-right: 1px solid var(--line); font-size: 13px; position: sticky; top: 0; align-self: start; max-height: 100vh; overflow: auto; }
nav ul { list-style: none; padding-left: .8rem; margin: .2rem 0; }
nav > ul { padding-left: 0; }
nav h2 { margin-top: 0; }
nav a { overflow-wrap: anywhere; }
main { grid-area: main; padding: 0 2rem 4rem; min-width: 0; max-width: 70rem; }
h1 { margin: .2rem 0; font-size: 1.6rem; }
h2 { margin-top: 2.5rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { margin-bottom: .3rem; overflow-wrap: anywhere; }
h4 { margin: 1rem 0 .3rem; font-size: .95rem; }
a { color: var(--accent); }
code, pre { font: 13px/1.45 ui-monospace, monospace; }
code { background: var(--code); padding: 0 .2rem; border-radius: 3px; }
pre { background: var(--code); padding: .7rem; overflow-x: auto; border-radius: 4px; white-space: pre-wrap; word-break: break-all; }
pre code { padding: 0; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0; table-layout: fixed; }
th:first-child { width: 14rem; }
th:nth-child(2):not(:last-child) { width: 12rem; }
td { overflow-wrap: anywhere; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); padding: .3rem .5rem; }
td p { margin: 0 0 .3rem; }
.method, .type { border-top: 1px solid var(--line); padding-top: .5rem; margin-top: 1.5rem; }
.verb { font-size: .8rem; color: var(--accent); text-transform: uppercase; letter-spacing: .05em; }
.badge { display: inline-block; border: 1px solid var(--line); border-radius: 999px; padding: 0 .5rem; font-size: 12px; color: var(--muted); }
.rules { color: var(--muted); font-size: 13px; }
.answer, .none { color: var(--muted); }
@media (max-width: 50rem) { body { display: block; } nav { position: static; max-height: none; border-right: 0; } }
`;

// ---------------------------------------------------------------------------
// Serving

type Request = Parameters<HttpFallback>[0];
type Response = Parameters<HttpFallback>[1];

export interface ApiDocsOptions {
  readonly logger: Logger;
  /** Where the document comes from; default loadEdgeApiDocument(). */
  readonly load?: () => Promise<OpenApiDocument>;
}

const hostPattern = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** The origin the client asked for, for the page's examples: Host or, over HTTP/2 (the edge's Envoy), :authority, when well-formed; and x-forwarded-proto (http or https). */
export function requestOrigin(req: Request, fallbackHost: string): string {
  const asked = req.headers.host ?? req.headers[":authority"];
  const host = typeof asked === "string" && hostPattern.test(asked) ? asked : fallbackHost;
  const forwarded = String(req.headers["x-forwarded-proto"] ?? "").split(",")[0].trim();
  return `${forwarded === "https" ? "https" : "http"}://${host}`;
}

/**
 * GET and HEAD of /openapi.json, /api and /api.css; false for any other
 * request. The document is built once, on first use (a failure is answered
 * 500 and tried again next time).
 */
export function createApiDocs(options: ApiDocsOptions): (req: Request, res: Response, path: string, fallbackHost: string) => boolean {
  const load = options.load ?? loadEdgeApiDocument;
  let built: Promise<{ doc: OpenApiDocument; json: string }> | undefined;
  const documentOnce = () => {
    built ??= load().then((doc) => ({ doc, json: `${JSON.stringify(doc, null, 2)}\n` }));
    built.catch(() => {
      built = undefined;
    });
    return built;
  };
  const send = (req: Request, res: Response, contentType: string, body: string, extra: Record<string, string> = {}) => {
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    const headers = { ...SECURITY_HEADERS, "content-type": contentType, "cache-control": "no-cache", etag, ...extra };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "content-length": Buffer.byteLength(body) });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
  return (req, res, path, fallbackHost) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if (path === API_PATHS.css) {
      send(req, res, "text/css; charset=utf-8", API_CSS);
      return true;
    }
    if (path !== API_PATHS.document && path !== API_PATHS.page && path !== `${API_PATHS.page}/`) return false;
    documentOnce().then(
      ({ doc, json }) => {
        if (path === API_PATHS.document) send(req, res, "application/json; charset=utf-8", json);
        else send(req, res, "text/html; charset=utf-8", renderApiReference(doc, requestOrigin(req, fallbackHost)), { vary: "host, x-forwarded-proto" });
      },
      (err: unknown) => {
        options.logger.error({ err, path }, "building the API documentation failed");
        res.writeHead(500, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        res.end(`The API documentation could not be built: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
    return true;
  };
}
