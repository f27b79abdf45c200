// grpc.health.v1.Health: Check, Watch and List, per service name and for the
// whole server (the empty name). Envoy's active health checks and Kubernetes'
// gRPC probes both call Check.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/health/v1/health_pb.js";
import { clip } from "./telemetry/refusals.ts";

export { Status as ServingStatus };

export interface HealthRegistry {
  /** Sets one name's status; "" is the whole server. Watchers see the change at once. */
  set(name: string, status: Status): void;
  /** Sets every registered name, the whole server included. */
  setAll(status: Status): void;
  get(name: string): Status | undefined;
  names(): string[];
  readonly impl: ServiceImpl<typeof Health>;
}

export function createHealthRegistry(): HealthRegistry {
  const statuses = new Map<string, Status>([["", Status.SERVING]]);
  const watchers = new Set<(name: string) => void>();

  const registry: HealthRegistry = {
    set(name, status) {
      if (statuses.get(name) === status) return;
      statuses.set(name, status);
      for (const w of watchers) w(name);
    },
    setAll(status) {
      for (const name of [...statuses.keys()]) registry.set(name, status);
    },
    get: (name) => statuses.get(name),
    names: () => [...statuses.keys()],
    impl: {
      check(req) {
        const status = statuses.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service ${clip(req.service)}`, Code.NotFound);
        return { status };
      },
      list() {
        const out: Record<string, { status: Status }> = {};
        for (const [name, status] of statuses) out[name] = { status };
        return { statuses: out };
      },
      async *watch(req, ctx) {
        // Per the health protocol, an unknown name is not an error for Watch:
        // it reports SERVICE_UNKNOWN and keeps watching.
        let last: Status | undefined;
        let wake: (() => void) | undefined;
        const listener = (name: string) => {
          if (name === req.service) wake?.();
        };
        watchers.add(listener);
        const aborted = new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
        try {
          while (!ctx.signal.aborted) {
            const current = statuses.get(req.service) ?? Status.SERVICE_UNKNOWN;
            if (current !== last) {
              last = current;
              yield { status: current };
            }
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
          }
        } finally {
          watchers.delete(listener);
        }
      },
    },
  };
  return registry;
}
