import type { Migration } from "@shop/platform";

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "orders",
    sql: `
      CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
        total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
        currency TEXT NOT NULL,
        payment_method TEXT NOT NULL,
        payment_id TEXT NOT NULL DEFAULT '',
        cancel_reason TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT NOT NULL,
        request_fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (user_id, idempotency_key)
      );
      CREATE INDEX orders_by_user ON orders (user_id, created_at, order_id);
      CREATE INDEX orders_pending ON orders (status, created_at);
      CREATE TABLE order_items (
        order_id TEXT NOT NULL REFERENCES orders (order_id),
        line_no INTEGER NOT NULL,
        sku TEXT NOT NULL,
        name TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        unit_price_minor BIGINT NOT NULL,
        line_total_minor BIGINT NOT NULL,
        PRIMARY KEY (order_id, line_no)
      );
    `,
  },
];
