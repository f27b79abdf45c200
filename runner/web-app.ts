// The browser app (web/dist) over plain HTTP GET and HEAD, as an HttpFallback
// of the platform's server: the embedded runner (`make run`) serves it at /
// beside the services, and in the mesh the edge's backend process (beside
// the edge Envoy, `node runner/instance.ts edge-backend`) serves it to the
// edge, which routes every path that is not an RPC there. One piece of code
// for both, so both answer alike: content types, cache headers, ETags, and
// the security headers (security-headers.ts: CSP with frame-ancestors 'none',
// Referrer-Policy, nosniff), which the edge sets on this route too. The API
// documentation (/openapi.json, /api, /api.css: runner/api-reference.ts) is
// served from here as well, so it is wherever the app is.
import { createReadStream, statSync } from "node:fs";
import type { Stats } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpFallback, Logger } from "@shop/platform";
import { createApiDocs } from "./api-reference.ts";
import { SECURITY_HEADERS } from "./security-headers.ts";

/** Where `make web` (vite build) writes the app. */
export const webDist = fileURLToPath(new URL("../web/dist/", import.meta.url));

export interface WebAppOptions {
  /** For errors while reading a file. */
  logger: Logger;
  /** The built app. Default web/dist. */
  dist?: string;
  /** The shop's address as a user types it, for the page shown while the app is not built: "localhost:8080". */
  address?: string;
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

const notBuilt = (address: string) => `<!doctype html><meta charset="utf-8"><title>Shop: web app not built</title>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto">
<h1>The web app is not built yet</h1>
<p>The shop's services are running, but <code>web/dist</code> is missing. Build it with
<code>make web</code> (or <code>npm run build -w @shop/web</code>) and reload this page.</p>
<p>The APIs work regardless: try <code>grpcurl -plaintext ${address} list</code>.</p>`;

/**
 * GET and HEAD for the files of web/dist; false (a 404) for anything else.
 * Vite names everything under /assets/ by its content hash, so those are
 * cached for a year; index.html must be revalidated every time (an ETag
 * makes that a 304).
 */
export function createWebApp(options: WebAppOptions): HttpFallback {
  const dist = options.dist ?? webDist;
  const root = dist.endsWith(sep) ? dist : `${dist}${sep}`;
  const address = options.address ?? `localhost:${process.env.PORT ?? 8080}`;
  const apiDocs = createApiDocs({ logger: options.logger });
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      return false;
    }
    if (apiDocs(req, res, path, address)) return true;
    if (path === "/") path = "/index.html";
    const file = normalize(join(root, path));
    if (!file.startsWith(root) || file.split(sep).includes("..")) return false;
    let stat: Stats | undefined;
    try {
      stat = statSync(file);
    } catch {
      stat = undefined;
    }
    if (!stat?.isFile()) {
      if (path !== "/index.html") return false;
      res.writeHead(503, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(notBuilt(address));
      return true;
    }
    const etag = `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const headers = {
      ...SECURITY_HEADERS,
      "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
      "cache-control": path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      etag,
    };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, "content-length": stat.size });
    if (req.method === "HEAD") {
      res.end();
      return true;
    }
    createReadStream(file)
      .on("error", (err) => {
        options.logger.error({ err, path }, "reading a web app file failed");
        res.destroy(err);
      })
      .pipe(res);
    return true;
  };
}
