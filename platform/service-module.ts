// The shape every service folder exports, so one runner can start any set of
// them in one process (embedded) or each alone (mesh), unchanged.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
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

/**
 * The deadline a module's handler of `caller` gives its call of `callee`
 * when it has budgetMs left; undefined when it gives none of its own (the
 * client then sends the callee's contract deadline, cut to what is left).
 */
export type CallDeadline = (caller: DescMethod, callee: DescMethod, budgetMs: number) => number | undefined;

export interface ServiceModule {
  readonly name: string;
  readonly migrations: readonly Migration[];
  start(ctx: ServiceContext): Promise<Served>;
  /**
   * Declared by a module whose handlers give their calls shorter deadlines
   * than what they have left (the storefront's page sections), computed by
   * the same function the handlers use; the contracts check and the
   * console's call paths read it. Default: none.
   */
  readonly callDeadlineMs?: CallDeadline;
}

/** Pairs a descriptor with its implementation, checked against each other. Missing methods answer UNIMPLEMENTED. */
export function serve<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServedService {
  return { service, impl } as unknown as ServedService;
}
