// One service instance of the mesh: `node runner/instance.ts <service> [replica]`.
//
// It serves that one service module on the instance's port from the port
// scheme (envoy/ports.ts), and reaches every other service through its own
// sidecar's outbound listener. `make mesh` starts one per replica; started by
// hand (after stopping one) it takes that replica's place, which is how the
// fault drills restart what they killed.
//
// `node runner/instance.ts edge-backend` (formerly `reflection`, still
// accepted) is the process beside the edge Envoy that answers what no single
// service can (envoy/edge.ts routes it there):
//   - server reflection over what the edge routes, nothing more
//     (envoy/contracts.ts edgeServices: the exposed services, health, the
//     admin services, reflection; payments' symbols are NOT_FOUND);
//   - mesh.v1.OpsService and mesh.v1.EventAdminService for the whole mesh:
//     every call is asked of every service instance (through its sidecar's
//     inbound listener, over mTLS as sa/edge-backend) and the answers merged (platform/ops/merge.ts,
//     event-admin.ts). The operator's token is checked here (these methods
//     take a service token) and forwarded as it came to each instance;
//   - the browser app, web/dist (runner/web-app.ts, as `make run` serves it).
//
// Environment (the mesh runner sets all of it; defaults fit `make mesh`):
//   PORT, HOST             default the scheme's app port (plus MESH_PORT_OFFSET), 127.0.0.1
//   SHOP_REMOTE_ADDRESS    default http://127.0.0.1:<the sidecar's outbound port>
//   MESH_INSTANCE          the name in every log line and in OpsService answers, default <service>-<replica>
//   SHOP_JWKS_FILE, SHOP_SIGNING_KEYS_FILE  the token keys (required; SHOP_DEV_KEYS=1 for development keys on loopback)
//   STORE, <SERVICE>_DATABASE_URL, BUS, NATS_URL, ...: as for every runner (README, Configuration)
// The edge backend also reads:
//   EDGE_REFLECTION        "off": serve no reflection (the edge refuses it anyway)
//   MESH_DISCOVERY         "local" (default): the instances of topology.json on loopback, by the port scheme;
//                          "dns": every pod behind each service's headless Service (Kubernetes), asked again every few seconds
//   MESH_NAMESPACE         with dns: the namespace of the Services, default "shop"
//   MESH_TLS_DIR           its mesh certificate (tls.crt, tls.key, ca.crt: spiffe://shop.local/ns/shop/sa/edge-backend),
//                          default /etc/shop/mesh-tls; every call to an inbound listener is mTLS, the callee's SPIFFE ID
//                          checked, and the files are read again when they change (rotation)
//   MESH_TRUST_DOMAIN, MESH_SPIFFE_NAMESPACE  the SPIFFE IDs' trust domain and namespace, default shop.local and shop
import { createHash } from "node:crypto";
import { resolve4 } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  createEventAdminAggregator,
  createLogger,
  createOpsAggregator,
  createReflection,
  createServer,
  createTokenAuthority,
  currentScope,
  eventMigrations,
  exitOnSignals,
  KeyConfigError,
  loadTopology,
  openServiceDatabase,
  ReflectionV1,
  ReflectionV1Alpha,
  remainingBudgetMs,
  withCallPolicy,
} from "@shop/platform";
import type { Logger, TokenAuthority } from "@shop/platform";
import { edgeServices, loadServiceDescriptors } from "../envoy/contracts.ts";
import { KUBERNETES_TLS_DIR, spiffeId, TLS_FILES } from "../envoy/mtls.ts";
import { edgePorts, instancePorts, instancesOf } from "../envoy/ports.ts";
import { EventAdminService } from "../gen/mesh/v1/events_pb.js";
import { OpsService } from "../gen/mesh/v1/ops_pb.js";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";
import { createWebApp } from "./web-app.ts";

const [name, replicaArg = "0"] = process.argv.slice(2);
const topology = loadTopology();
const offset = Number(process.env.MESH_PORT_OFFSET ?? 0);
const usage = `usage: node runner/instance.ts <${Object.keys(topology.services).join("|")}> [replica] | edge-backend | migrate <service>`;

function fail(message: string): never {
  process.stderr.write(`runner/instance.ts: ${message}\n${usage}\n`);
  process.exit(2);
}

if (!name) fail("which service?");
if (!Number.isInteger(offset)) fail(`MESH_PORT_OFFSET=${process.env.MESH_PORT_OFFSET} is not a whole number`);
const envPort = process.env.PORT ? Number(process.env.PORT) : undefined;
const host = process.env.HOST ?? "127.0.0.1";

/**
 * Fail closed: the token keys the environment configures (SHOP_JWKS_FILE and
 * this process's SHOP_SIGNING_KEYS_FILE), or development keys only when
 * SHOP_DEV_KEYS=1 says so out loud (and then loopback only: server.ts).
 */
function tokenAuthority(): TokenAuthority {
  try {
    return createTokenAuthority();
  } catch (err) {
    return failOnKeys(err);
  }
}

/** A key refusal (no keys; development keys beyond loopback) as a message and exit 2, not a stack. */
function failOnKeys(err: unknown): never {
  if (err instanceof KeyConfigError) fail(err.message);
  throw err;
}

// ---------------------------------------------------------------- the edge backend

/** One service instance the edge backend asks: "orders-1" at its sidecar's inbound listener. */
interface Target {
  readonly name: string;
  readonly service: string;
  readonly url: string;
}

/** Time kept back from the caller's budget for merging and answering: an instance that hangs is left out, not the whole answer. */
const FAN_OUT_MARGIN_MS = 300;
/** How long a DNS answer about the pods of a service is used. */
const DNS_TTL_MS = 3000;

/** How long the mesh certificate's files are used before they are read again (a rotated one is picked up within this). */
const TLS_RELOAD_MS = 10_000;

interface MeshTlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
  /** Changes when any of the three does: clients made with older files are replaced. */
  readonly version: string;
}

/**
 * The edge backend's mesh certificate (MESH_TLS_DIR), read when first needed
 * and again every TLS_RELOAD_MS. Missing files fail the calls that need them
 * (UNAVAILABLE, naming the folder), not the process: it also serves
 * reflection and the browser app.
 */
function meshTlsFiles(dir: string): () => MeshTlsFiles {
  let cached: { at: number; files: MeshTlsFiles } | undefined;
  return () => {
    if (cached && Date.now() - cached.at < TLS_RELOAD_MS) return cached.files;
    try {
      const [cert, key, ca] = [TLS_FILES.cert, TLS_FILES.key, TLS_FILES.ca].map((f) => readFileSync(join(dir, f)));
      const version = createHash("sha256").update(cert).update(key).update(ca).digest("hex");
      cached = { at: Date.now(), files: { cert, key, ca, version } };
      return cached.files;
    } catch (err) {
      throw new ConnectError(`the edge backend has no mesh certificate in ${dir} (MESH_TLS_DIR): ${(err as Error).message}`, Code.Unavailable);
    }
  };
}

/** Every instance of topology.json on loopback, by the port scheme: what `make mesh` starts. */
function localTargets(): () => readonly Target[] {
  const targets = instancesOf(topology, offset).map((i) => ({ name: i.name, service: i.service, url: `https://127.0.0.1:${i.ports.inbound}` }));
  return () => targets;
}

/** Every ready pod behind each service's headless Service (what the sidecars' STRICT_DNS clusters see), looked up again every few seconds. */
function dnsTargets(namespace: string, logger: Logger): () => Promise<readonly Target[]> {
  let cached: { at: number; targets: Promise<Target[]> } | undefined;
  const lookup = async () => {
    const perService = await Promise.all(
      Object.keys(topology.services).map(async (service) => {
        const name = `${service}.${namespace}.svc.cluster.local`;
        const ips = await resolve4(name).catch((err: NodeJS.ErrnoException) => {
          logger.warn({ name, err: err.code ?? err.message }, "no pod found for a service: its instances are left out of the mesh-wide answers");
          return [] as string[];
        });
        const port = instancePorts(topology, service, 0).inbound;
        return ips.sort().map((ip) => ({ name: `${service}@${ip}`, service, url: `https://${ip}:${port}` }));
      }),
    );
    return perService.flat();
  };
  return () => {
    if (!cached || Date.now() - cached.at > DNS_TTL_MS) cached = { at: Date.now(), targets: lookup() };
    return cached.targets;
  };
}

/**
 * Calls made for the caller being served: its authorization header travels
 * as it came (the operator's token, already checked here), and each call
 * ends FAN_OUT_MARGIN_MS before the caller's budget does.
 */
function onBehalfOfCaller(inner: Transport): Transport {
  const prepare = (timeoutMs: number | undefined, header: HeadersInit | undefined) => {
    const headers = new Headers(header);
    const authorization = currentScope()?.authorization;
    if (authorization) headers.set("authorization", authorization);
    const left = remainingBudgetMs();
    const timeout = left === undefined ? timeoutMs : Math.max(1, Math.min(timeoutMs ?? Infinity, left - FAN_OUT_MARGIN_MS));
    return { headers, timeout };
  };
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const { headers, timeout } = prepare(timeoutMs, header);
      return inner.unary(method, signal, timeout, headers, input, contextValues);
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      const { headers, timeout } = prepare(timeoutMs, header);
      return inner.stream(method, signal, timeout, headers, input, contextValues);
    },
  };
}

async function startEdgeBackend(): Promise<void> {
  const instance = process.env.MESH_INSTANCE ?? "edge-backend";
  const logger = createLogger().child({ instance });
  const edge = edgePorts(topology, offset);
  const reflectionOn = !/^(off|0|false|no)$/i.test(process.env.EDGE_REFLECTION ?? "on");
  const discovery = process.env.MESH_DISCOVERY ?? "local";
  if (discovery !== "local" && discovery !== "dns") fail(`MESH_DISCOVERY=${discovery}: expected local or dns`);
  const namespace = process.env.MESH_NAMESPACE ?? "shop";
  const targets = discovery === "dns" ? dnsTargets(namespace, logger) : localTargets();

  // The platform's own reflection would list what this process serves: only the aggregates.
  const server = createServer({
    tokens: tokenAuthority(),
    logger,
    port: envPort ?? edge.reflection,
    host,
    reflection: false,
    fallback: createWebApp({ logger, address: `localhost:${edge.listener}` }),
  });

  // mTLS to every inbound listener, as the edge-backend identity; only the target service's SPIFFE ID is accepted.
  const tlsFiles = meshTlsFiles(process.env.MESH_TLS_DIR ?? KUBERNETES_TLS_DIR);
  const spiffe = { trustDomain: process.env.MESH_TRUST_DOMAIN, namespace: process.env.MESH_SPIFFE_NAMESPACE };
  const clients = new Map<string, { version: string; ops: Client<typeof OpsService>; events: Client<typeof EventAdminService> }>();
  const clientsOf = (t: Target) => {
    const files = tlsFiles();
    let c = clients.get(t.url);
    if (!c || c.version !== files.version) {
      const expected = `URI:${spiffeId(t.service, spiffe)}`;
      const nodeOptions = {
        cert: files.cert,
        key: files.key,
        ca: files.ca,
        checkServerIdentity: (_host: string, cert: { subjectaltname?: string }) =>
          cert.subjectaltname === expected ? undefined : new Error(`${t.name} presented ${cert.subjectaltname ?? "no SAN"}, not ${expected}`),
      };
      const transport = onBehalfOfCaller(withCallPolicy(createGrpcTransport({ baseUrl: t.url, nodeOptions }), { caller: "edge", tokens: server.tokens, metrics: server.metrics }));
      c = { version: files.version, ops: createClient(OpsService, transport), events: createClient(EventAdminService, transport) };
      clients.set(t.url, c);
    }
    return c;
  };
  // An empty mesh is no answer: the console would draw nothing and say nothing.
  const found = async () => {
    const list = await targets();
    if (list.length === 0) throw new ConnectError(`no instance of the mesh found (MESH_DISCOVERY=${discovery}${discovery === "dns" ? `, namespace ${namespace}` : ""})`, Code.Unavailable);
    return list;
  };
  server.register("edge", OpsService, createOpsAggregator(async () => (await found()).map((t) => clientsOf(t).ops)));
  server.register(
    "edge",
    EventAdminService,
    createEventAdminAggregator(async () => (await found()).map((t) => ({ name: t.name, service: t.service, client: clientsOf(t).events }))),
  );

  // What the edge routes and nothing else: a service it does not expose is not described to outside callers.
  const services = edgeServices(topology, await loadServiceDescriptors(topology));
  if (reflectionOn) {
    const reflection = createReflection(() => services);
    server.register("platform", ReflectionV1, reflection.v1);
    server.register("platform", ReflectionV1Alpha, reflection.v1alpha);
  }
  const { port } = await server.listen().catch(failOnKeys);
  exitOnSignals(logger, () => server.drain());
  logger.info({ port, reflection: reflectionOn, discovery, instances: (await targets()).map((t) => t.name) }, "listening");
}

// ---------------------------------------------------------------- start

if (name === "migrate") {
  // The Helm chart's pre-install/pre-upgrade Job: open the service's database
  // (its migrations run under pg_advisory_lock), close it, exit 0; 1 on failure.
  const service = process.argv[3];
  const serviceModule = allServices.find((m) => m.name === service);
  if (!service || !serviceModule || !topology.services[service]) fail(`migrate which service? ${service ?? "(none)"} is not in topology.json and runner/services.ts`);
  const logger = createLogger().child({ instance: process.env.MESH_INSTANCE ?? `${service}-migrate` });
  try {
    const db = await openServiceDatabase({ service, migrations: [...serviceModule.migrations, ...eventMigrations], env: process.env, logger });
    await db.close();
    logger.info({ service }, "migrated");
  } catch (err) {
    logger.error({ err, service }, "migration failed");
    process.exitCode = 1;
  }
} else if (name === "edge-backend" || name === "reflection") {
  await startEdgeBackend();
} else {
  const serviceModule = allServices.find((m) => m.name === name);
  if (!serviceModule || !topology.services[name]) fail(`no service ${name} in topology.json and runner/services.ts`);
  const replica = Number(replicaArg);
  let ports: ReturnType<typeof instancePorts>;
  try {
    ports = instancePorts(topology, name, replica, offset);
  } catch (err) {
    fail((err as Error).message);
  }
  const instance = process.env.MESH_INSTANCE ?? `${name}-${replica}`;
  const logger = createLogger().child({ instance });
  const shop = await startShop({
    modules: [serviceModule],
    port: envPort ?? ports.app,
    host,
    logger,
    tokens: tokenAuthority(),
    remoteAddress: process.env.SHOP_REMOTE_ADDRESS ?? `http://127.0.0.1:${ports.outbound}`,
  }).catch(failOnKeys);
  // Signal handlers first: whoever reads "listening" may stop the process at once.
  exitOnSignals(logger, () => shop.stop());
  logger.info({ port: shop.port, service: name, replica, remote: process.env.SHOP_REMOTE_ADDRESS ?? `http://127.0.0.1:${ports.outbound}` }, "listening");
}
