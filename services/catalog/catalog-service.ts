// The CatalogService handlers: reads only, so every method is safe to retry.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { pageToken } from "@shop/platform";
import type { CatalogService } from "../../gen/shop/catalog/v1/catalog_pb.js";
import type { ProductRow, ProductStore } from "./store.ts";

const money = (currencyCode: string, unitsMinor: bigint) => ({ currencyCode, unitsMinor });

const toProduct = (row: ProductRow) => ({
  sku: row.sku,
  name: row.name,
  description: row.description,
  category: row.category,
  price: money(row.currency_code, BigInt(row.price_minor)),
});

function page(rows: ProductRow[], size: number) {
  const more = rows.length > size;
  const shown = more ? rows.slice(0, size) : rows;
  return {
    products: shown.map(toProduct),
    nextPageToken: more ? pageToken.encode({ after: shown[shown.length - 1].sku }) : "",
  };
}

export function createCatalogService(store: ProductStore): ServiceImpl<typeof CatalogService> {
  return {
    async getProduct(req) {
      const row = await store.bySku(req.sku);
      if (!row) throw new ConnectError(`product ${req.sku} not found`, Code.NotFound);
      return { product: toProduct(row) };
    },

    async listProducts(req) {
      const size = pageToken.size(req.pageSize);
      const after = pageToken.decode<{ after: string }>(req.pageToken, ["after"])?.after ?? "";
      return page(await store.list(after, size, req.category), size);
    },

    async searchProducts(req) {
      const size = pageToken.size(req.pageSize);
      const after = pageToken.decode<{ after: string }>(req.pageToken, ["after"])?.after ?? "";
      return page(await store.search(req.query.trim(), after, size), size);
    },

    async quotePrice(req) {
      const products = await store.bySkus(req.items.map((i) => i.sku));
      const unknown = [...new Set(req.items.map((i) => i.sku).filter((sku) => !products.has(sku)))];
      if (unknown.length > 0) throw new ConnectError(`unknown products: ${unknown.join(", ")}`, Code.NotFound);
      const currency = products.values().next().value!.currency_code;
      let total = 0n;
      const lines = req.items.map((item) => {
        const p = products.get(item.sku)!;
        const unit = BigInt(p.price_minor);
        const lineTotal = unit * BigInt(item.quantity);
        total += lineTotal;
        return { sku: p.sku, name: p.name, quantity: item.quantity, unitPrice: money(currency, unit), lineTotal: money(currency, lineTotal) };
      });
      return { lines, total: money(currency, total) };
    },
  };
}
