// `make run`: the whole shop in one process on one port, with the browser
// app (web/dist) served at /. It binds 127.0.0.1 unless HOST says otherwise.
// Token keys come from SHOP_JWKS_FILE / SHOP_SIGNING_KEYS_FILE (every private
// key of the shop: runner/keys.ts's all.json); without them it makes (once)
// and uses development keys in .dev-keys/, and then refuses any HOST beyond
// loopback, saying what to set.
import { createLogger, createTokenAuthority, exitOnSignals, KeyConfigError } from "@shop/platform";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";
import { createWebApp } from "./web-app.ts";

const logger = createLogger();
let shop: Awaited<ReturnType<typeof startShop>>;
try {
  const tokens = createTokenAuthority({ allowDevelopmentKeys: true });
  shop = await startShop({ modules: allServices, logger, tokens, fallback: createWebApp({ logger }) });
} catch (err) {
  if (!(err instanceof KeyConfigError)) throw err;
  logger.fatal({ err: err.message }, "not started");
  process.stderr.write(`\nshop: not started: ${err.message}\n`);
  process.exit(2);
}
// Signal handlers first: whoever reads "listening" may stop the process at once.
exitOnSignals(shop.logger, () => shop.stop());

const address = `${shop.host.includes(":") ? `[${shop.host}]` : shop.host}:${shop.port}`;
if (shop.server.tokens.development) {
  shop.logger.warn({ keys: shop.server.tokens.keyOrigin }, "development token keys: loopback only; set SHOP_JWKS_FILE and SHOP_SIGNING_KEYS_FILE (node runner/keys.ts --out <dir>) to serve beyond it");
}
shop.logger.info({ port: shop.port, services: allServices.map((m) => m.name) }, "listening");
process.stderr.write(
  [
    "",
    `shop: ${allServices.map((m) => m.name).join(", ")} serving on http://${address} (gRPC, gRPC-Web, Connect, /metrics, /healthz)`,
    `  storefront: http://${address}/    operations console: http://${address}/#/console (operator token: make token)`,
    `  API reference: http://${address}/api    OpenAPI: http://${address}/openapi.json`,
    shop.server.tokens.development
      ? `  token keys: ${shop.server.tokens.keyOrigin}, loopback only; to serve beyond it: node runner/keys.ts --out keys, then SHOP_JWKS_FILE=keys/jwks.json SHOP_SIGNING_KEYS_FILE=keys/all.json HOST=0.0.0.0`
      : `  token keys: ${shop.server.tokens.keyOrigin}`,
    `  try: grpcurl -plaintext ${address} list`,
    `       grpcurl -plaintext -d '{"page_size": 3}' ${address} shop.catalog.v1.CatalogService/ListProducts`,
    "  Ctrl-C stops it.",
    "",
  ].join("\n"),
);
