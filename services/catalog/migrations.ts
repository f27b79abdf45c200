import type { Migration } from "@shop/platform";
import { seedProducts } from "./seed.ts";

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "products",
    sql: `
      CREATE TABLE products (
        sku TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        category TEXT NOT NULL,
        price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
        currency_code TEXT NOT NULL
      );
      CREATE INDEX products_category ON products (category, sku);
    `,
  },
  {
    version: 2,
    name: "seed catalog",
    sql: seedProducts
      .map(
        (p) =>
          `INSERT INTO products (sku, name, description, category, price_minor, currency_code) VALUES (${quote(p.sku)}, ${quote(p.name)}, ${quote(p.description)}, ${quote(p.category)}, ${p.priceMinor}, 'EUR');`,
      )
      .join("\n"),
  },
];
