// Products, read in SKU order for stable keyset pagination.
import type { Database } from "@shop/platform";

export interface ProductRow {
  sku: string;
  name: string;
  description: string;
  category: string;
  price_minor: number | bigint;
  currency_code: string;
}

export type ProductStore = ReturnType<typeof createProductStore>;

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export function createProductStore(db: Database) {
  return {
    bySku: (sku: string) => db.get<ProductRow>("SELECT * FROM products WHERE sku = ?", sku),
    async bySkus(skus: readonly string[]): Promise<Map<string, ProductRow>> {
      const unique = [...new Set(skus)];
      const rows = await db.all<ProductRow>(`SELECT * FROM products WHERE sku IN (${unique.map(() => "?").join(", ")})`, ...unique);
      return new Map(rows.map((r) => [r.sku, r]));
    },
    /** One page after the given SKU, one row more than asked to tell whether more follow. */
    list(after: string, limit: number, category: string) {
      return category
        ? db.all<ProductRow>("SELECT * FROM products WHERE category = ? AND sku > ? ORDER BY sku LIMIT ?", category, after, limit + 1)
        : db.all<ProductRow>("SELECT * FROM products WHERE sku > ? ORDER BY sku LIMIT ?", after, limit + 1);
    },
    search(query: string, after: string, limit: number) {
      const pattern = `%${escapeLike(query.toLowerCase())}%`;
      return db.all<ProductRow>(
        "SELECT * FROM products WHERE sku > ? AND (lower(name) LIKE ? ESCAPE '\\' OR lower(description) LIKE ? ESCAPE '\\' OR lower(category) LIKE ? ESCAPE '\\') ORDER BY sku LIMIT ?",
        after,
        pattern,
        pattern,
        pattern,
        limit + 1,
      );
    },
  };
}
