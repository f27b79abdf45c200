// The inventory's settings: explicit options first (tests), then the
// environment (the chart), then the defaults.
export interface InventoryOptions {
  /** How long stock for a new order stays held. Default INVENTORY_RESERVATION_TTL_MS, then 120000. */
  reservationTtlMs?: number;
  /** Time between expiry sweeps. Default INVENTORY_EXPIRY_SWEEP_MS, then 1000. */
  expirySweepMs?: number;
}

export interface InventoryConfig {
  reservationTtlMs: number;
  expirySweepMs: number;
}

function positiveInteger(name: string, value: number | string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number of milliseconds, got "${value}"`);
  return n;
}

/** Fails at start, naming the setting, rather than running with a nonsense timer. */
export function inventoryConfig(options: InventoryOptions, env: NodeJS.ProcessEnv): InventoryConfig {
  return {
    reservationTtlMs: positiveInteger("INVENTORY_RESERVATION_TTL_MS", options.reservationTtlMs ?? env.INVENTORY_RESERVATION_TTL_MS, 120_000),
    expirySweepMs: positiveInteger("INVENTORY_EXPIRY_SWEEP_MS", options.expirySweepMs ?? env.INVENTORY_EXPIRY_SWEEP_MS, 1000),
  };
}
