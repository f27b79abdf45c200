// `make run`: the whole shop in one process on one port, with the browser
// app (web/dist) served at /.
import { createLogger, DEVELOPMENT_TOKEN_KEY, exitOnSignals } from "@shop/platform";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";
import { createWebApp } from "./web-app.ts";

const logger = createLogger();
const shop = await startShop({ modules: allServices, logger, fallback: createWebApp({ logger }) });
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
