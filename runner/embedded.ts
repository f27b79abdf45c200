// `make run`: the whole shop in one process on one port, with the browser
// app (web/dist) served at /.
import { createReadStream, statSync } from "node:fs";
import type { Stats } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { DEVELOPMENT_TOKEN_KEY, exitOnSignals } from "@shop/platform";
import type { HttpFallback } from "@shop/platform";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";

const webDist = fileURLToPath(new URL("../web/dist/", import.meta.url));

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

const notBuilt = `<!doctype html><meta charset="utf-8"><title>Shop: web app not built</title>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto">
<h1>The web app is not built yet</h1>
<p>The shop's services are running, but <code>web/dist</code> is missing. Build it with
<code>make web</code> (or <code>npm run build -w @shop/web</code>) and reload this page.</p>
<p>The APIs work regardless: try <code>grpcurl -plaintext localhost:${process.env.PORT ?? 8080} list</code>.</p>`;

/**
 * GET and HEAD for the files of web/dist. Vite names everything under
 * /assets/ by its content hash, so those are cached for a year; index.html
 * must be revalidated every time (an ETag makes that a 304).
 */
const serveWebApp: HttpFallback = (req, res) => {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  let path: string;
  try {
    path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
  } catch {
    return false;
  }
  if (path === "/") path = "/index.html";
  const file = normalize(join(webDist, path));
  if (!file.startsWith(webDist) || file.split(sep).includes("..")) return false;
  let stat: Stats | undefined;
  try {
    stat = statSync(file);
  } catch {
    stat = undefined;
  }
  if (!stat?.isFile()) {
    if (path !== "/index.html") return false;
    res.writeHead(503, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(notBuilt);
    return true;
  }
  const etag = `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
  const headers = {
    "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
    "cache-control": path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    etag,
    "x-content-type-options": "nosniff",
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
      shop.logger.error({ err, path }, "reading a web app file failed");
      res.destroy(err);
    })
    .pipe(res);
  return true;
};

const shop = await startShop({ modules: allServices, fallback: serveWebApp });
// Signal handlers first: whoever reads "listening" may stop the process at once.
exitOnSignals(shop.logger, () => shop.stop());

const address = `localhost:${shop.port}`;
if ((process.env.SHOP_TOKEN_KEY ?? DEVELOPMENT_TOKEN_KEY) === DEVELOPMENT_TOKEN_KEY) {
  shop.logger.warn("SHOP_TOKEN_KEY is not set: tokens are signed with the development key; set it outside local runs");
}
shop.logger.info({ port: shop.port, services: allServices.map((m) => m.name) }, "listening");
process.stderr.write(
  [
    "",
    `shop: ${allServices.map((m) => m.name).join(", ")} serving on http://${address} (gRPC, gRPC-Web, Connect, /metrics, /healthz)`,
    `  storefront: http://${address}/    operations console: http://${address}/#/console (operator token: make token)`,
    `  try: grpcurl -plaintext ${address} list`,
    `       grpcurl -plaintext -d '{"page_size": 3}' ${address} shop.catalog.v1.CatalogService/ListProducts`,
    "  Ctrl-C stops it.",
    "",
  ].join("\n"),
);
