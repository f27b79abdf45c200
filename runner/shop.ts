// Starts a set of service modules in this process behind one server. The
// embedded runner starts all of them; a mesh instance starts one. Calls to a
// service served here stay in-process; calls to any other go over gRPC to
// remoteAddress (in the mesh, the instance's own Envoy sidecar). Either way a
// module gets clients only for the services topology.json lets it call: one
// that asks for another fails the start, naming what the topology allows.
import type { DescService } from "@bufbuild/protobuf";
import { createClientFactory, createEventRuntime, createOpsService, createServer, eventBusFromEnv, eventMigrations, loadTopology, openServiceDatabase, watchDatabaseHealth } from "@shop/platform";
import type { Database, EventRuntime, Logger, Route, ServerOptions, ServiceModule, ShopServer, Topology } from "@shop/platform";
import { systemMapCallPaths } from "../contracts/system-map.ts";
import { EventAdminService } from "../gen/mesh/v1/events_pb.js";
import { OpsService } from "../gen/mesh/v1/ops_pb.js";

export interface ShopOptions extends ServerOptions {
  modules: readonly ServiceModule[];
  /** Folder for each service's SQLite file, or ":memory:". Default DATA_DIR, then "./data". With STORE=postgres, each service's <SERVICE>_DATABASE_URL instead. */
  dataDir?: string;
  /** Base URL for services not served in this process. Default SHOP_REMOTE_ADDRESS. */
  remoteAddress?: string;
  /** Configuration the services read (ServiceContext.env). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Consumer tuning (attempts, backoff), mostly for tests. */
  events?: Parameters<typeof createEventRuntime>[0]["consumer"];
  /** The event bus. Default from the environment: BUS=nats (JetStream at NATS_URL), else in-process. */
  bus?: Parameters<typeof createEventRuntime>[0]["bus"];
  /** Who may call whom (and what the console maps). Default: the repository's topology.json. */
  topology?: Topology;
}

export interface RunningShop {
  readonly server: ShopServer;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly events: EventRuntime;
  /** Drains the server, then stops every service and closes its database. */
  stop(): Promise<void>;
}

export async function startShop(options: ShopOptions): Promise<RunningShop> {
  const server = createServer(options);
  const topology = options.topology ?? loadTopology();
  const dataDir = options.dataDir ?? process.env.DATA_DIR ?? "./data";
  const remoteAddress = options.remoteAddress ?? process.env.SHOP_REMOTE_ADDRESS;
  const local = new Set<DescService>();
  const routeFor = (service: DescService): Route => {
    if (local.has(service) || !remoteAddress) return { kind: "in-process", lookup: server.route };
    return { kind: "grpc", baseUrl: remoteAddress };
  };

  const env = options.env ?? process.env;
  const events = createEventRuntime({ bus: options.bus ?? eventBusFromEnv(env, server.logger), logger: server.logger, consumer: options.events });
  const databases: Database[] = [];
  const stops: Array<() => Promise<void>> = [];
  async function startModule(module: ServiceModule) {
    const logger = server.logger.child({ app: module.name });
    const db = await openServiceDatabase({ service: module.name, migrations: [...module.migrations, ...eventMigrations], env, dataDir, logger });
    databases.push(db);
    const served = await module.start({
      name: module.name,
      logger,
      db,
      clients: createClientFactory({ caller: module.name, tokens: server.tokens, metrics: server.metrics, routeFor, topology }),
      tokens: server.tokens,
      events: events.forService(module.name, db),
      env,
    });
    for (const s of served.services) {
      local.add(s.service);
      server.register(module.name, s.service, s.impl);
    }
    if (served.stop) stops.push(served.stop);
    const unwatch = watchDatabaseHealth({ db, health: server.health, names: served.services.map((s) => s.service.typeName), logger, draining: server.lifecycle.draining });
    stops.push(async () => unwatch());
  }
  try {
    for (const module of options.modules) await startModule(module);
  } catch (err) {
    // A module that could not start (a client the topology forbids, a failed
    // migration) leaves nothing open behind it.
    for (const stop of stops) await stop();
    for (const db of databases) await db.close();
    throw err;
  }
  server.register("platform", EventAdminService, events.admin);
  server.register("platform", OpsService, createOpsService({ server, topology, callPaths: () => systemMapCallPaths(topology) }));
  events.start();
  const { host, port } = await server.listen();
  return {
    server,
    host,
    port,
    logger: server.logger,
    events,
    async stop() {
      await server.drain();
      for (const stop of stops) await stop();
      await events.stop();
      for (const db of databases) await db.close();
    },
  };
}
