import type { Migration } from "@shop/platform";
import { seedStock } from "./seed.ts";

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "stock and reservations",
    // The CHECKs are the last line against overselling: whatever the code
    // does, reserved never exceeds on_hand and neither goes below zero.
    // expires_at is epoch milliseconds so the expiry sweep compares numbers.
    sql: `
      CREATE TABLE stock (
        sku TEXT PRIMARY KEY,
        on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
        reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand)
      );
      CREATE TABLE reservations (
        reservation_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('HELD', 'COMMITTED', 'RELEASED', 'EXPIRED')),
        expires_at BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX reservations_by_expiry ON reservations (status, expires_at);
      CREATE TABLE reservation_items (
        reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
        sku TEXT NOT NULL REFERENCES stock (sku),
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        PRIMARY KEY (reservation_id, sku)
      );
    `,
  },
  {
    version: 2,
    name: "seed stock",
    sql: seedStock.map((s) => `INSERT INTO stock (sku, on_hand, reserved) VALUES (${quote(s.sku)}, ${s.onHand}, 0);`).join("\n"),
  },
];
