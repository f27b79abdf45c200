// The shape every service folder exports, so one runner can start any set of
// them in one process (embedded) or each alone (mesh), unchanged.
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { TokenAuthority } from "./auth.ts";
import type { ClientFactory } from "./clients.ts";
import type { ServiceEvents } from "./events/event-runtime.ts";
import type { Database, Migration } from "./store/sqlite.ts";
import type { Logger } from "./telemetry/logger.ts";

export interface ServiceContext {
  /** The service's logical name ("users"). */
  readonly name: string;
  readonly logger: Logger;
  /** The service's own database; no other service can reach it. */
  readonly db: Database;
  readonly clients: ClientFactory;
  readonly tokens: TokenAuthority;
  /** Transactions that emit events through the outbox, and handlers for events. */
  readonly events: ServiceEvents;
  readonly env: NodeJS.ProcessEnv;
}

export interface Served {
  readonly services: ReadonlyArray<ServedService>;
  /** Stops timers and background work; called after the server drained. */
  stop?(): Promise<void>;
}

export interface ServedService<S extends DescService = DescService> {
  readonly service: S;
  readonly impl: Partial<ServiceImpl<S>>;
}

export interface ServiceModule {
  readonly name: string;
  readonly migrations: readonly Migration[];
  start(ctx: ServiceContext): Promise<Served>;
}

/** Pairs a descriptor with its implementation, checked against each other. Missing methods answer UNIMPLEMENTED. */
export function serve<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServedService {
  return { service, impl } as unknown as ServedService;
}
