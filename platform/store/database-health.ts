// A service that cannot reach its database cannot serve: its health names
// turn NOT_SERVING while pings fail (so Envoy and Kubernetes route around it)
// and SERVING again once one succeeds; the pool reconnects by itself.
import type { HealthRegistry } from "../health.ts";
import { ServingStatus } from "../health.ts";
import type { Logger } from "../telemetry/logger.ts";
import type { Database } from "./sqlite.ts";

export interface DatabaseHealthOptions {
  db: Database;
  health: HealthRegistry;
  /** The health names this database backs (the service's gRPC service names). */
  names: readonly string[];
  logger: Logger;
  /** Default DATABASE_HEALTH_INTERVAL_MS, then 1000. */
  intervalMs?: number;
  /** Refuses new work while draining: the drain owns the health status then. */
  draining?: AbortSignal;
}

export function watchDatabaseHealth(options: DatabaseHealthOptions): () => void {
  const { db, health, names, logger } = options;
  const intervalMs = options.intervalMs ?? Number(process.env.DATABASE_HEALTH_INTERVAL_MS ?? 1000);
  let reachable = true;
  let checking = false;
  const check = async () => {
    if (checking || options.draining?.aborted) return;
    checking = true;
    try {
      await db.ping();
      if (!reachable) {
        reachable = true;
        logger.info({ services: names }, "database reachable again: SERVING");
        if (!options.draining?.aborted) for (const n of names) health.set(n, ServingStatus.SERVING);
      }
    } catch (err) {
      if (reachable) {
        reachable = false;
        logger.warn({ err: (err as Error).message, services: names }, "database unreachable: NOT_SERVING");
        for (const n of names) health.set(n, ServingStatus.NOT_SERVING);
      }
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
