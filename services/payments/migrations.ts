import type { Migration } from "@shop/platform";

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "payments",
    sql: `
      CREATE TABLE payments (
        payment_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL UNIQUE,
        amount_minor BIGINT NOT NULL,
        currency TEXT NOT NULL,
        payment_method TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'VOIDED', 'REFUNDED', 'DECLINED', 'FAILED')),
        decline_reason TEXT NOT NULL DEFAULT '',
        provider_ref TEXT,
        refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE pending_orders (
        order_id TEXT PRIMARY KEY,
        amount_minor BIGINT,
        currency TEXT,
        payment_method TEXT,
        cancelled INTEGER NOT NULL DEFAULT 0,
        authorize_started_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE payment_idempotency_keys (
        idempotency_key TEXT PRIMARY KEY,
        operation TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        response BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
];
