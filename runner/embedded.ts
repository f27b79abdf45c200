// `make run`: the whole shop in one process on one port.
import { DEVELOPMENT_TOKEN_KEY } from "@shop/platform";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";

const shop = await startShop({ modules: allServices });
const address = `localhost:${shop.port}`;
if ((process.env.SHOP_TOKEN_KEY ?? DEVELOPMENT_TOKEN_KEY) === DEVELOPMENT_TOKEN_KEY) {
  shop.logger.warn("SHOP_TOKEN_KEY is not set: tokens are signed with the development key; set it outside local runs");
}
shop.logger.info({ port: shop.port, services: allServices.map((m) => m.name) }, "listening");
process.stderr.write(
  [
    "",
    `shop: ${allServices.map((m) => m.name).join(", ")} serving on http://${address} (gRPC, gRPC-Web, Connect, /metrics, /healthz)`,
    `  try: grpcurl -plaintext ${address} list`,
    `       grpcurl -plaintext -d '{"page_size": 3}' ${address} shop.catalog.v1.CatalogService/ListProducts`,
    "  Ctrl-C stops it.",
    "",
  ].join("\n"),
);

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) process.exit(1);
  stopping = true;
  shop.logger.info({ signal }, "shutting down");
  shop.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      shop.logger.error({ err }, "shutdown failed");
      process.exit(1);
    },
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
