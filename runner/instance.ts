// One service instance of the mesh: `node runner/instance.ts <service> [replica]`.
//
// It serves that one service module on the instance's port from the port
// scheme (envoy/ports.ts), and reaches every other service through its own
// sidecar's outbound listener. `make mesh` starts one per replica; started by
// hand (after stopping one) it takes that replica's place, which is how the
// fault drills restart what they killed.
//
// `node runner/instance.ts reflection` is the edge's reflection backend:
// server reflection over the descriptors of every topology service, which no
// single service can answer for, and nothing else.
//
// Environment (the mesh runner sets all of it; defaults fit `make mesh`):
//   PORT, HOST             default the scheme's app port (plus MESH_PORT_OFFSET), 127.0.0.1
//   SHOP_REMOTE_ADDRESS    default http://127.0.0.1:<the sidecar's outbound port>
//   MESH_INSTANCE          the name in every log line, default <service>-<replica>
//   STORE, <SERVICE>_DATABASE_URL, BUS, NATS_URL, ...: as for every runner (README, Configuration)
import { createLogger, createReflection, createServer, exitOnSignals, loadTopology, ReflectionV1, ReflectionV1Alpha } from "@shop/platform";
import { healthService, instanceAdminServices, loadServiceDescriptors, reflectionServices } from "../envoy/contracts.ts";
import { edgePorts, instancePorts } from "../envoy/ports.ts";
import { allServices } from "./services.ts";
import { startShop } from "./shop.ts";

const [name, replicaArg = "0"] = process.argv.slice(2);
const topology = loadTopology();
const offset = Number(process.env.MESH_PORT_OFFSET ?? 0);
const usage = `usage: node runner/instance.ts <${Object.keys(topology.services).join("|")}> [replica] | reflection`;

function fail(message: string): never {
  process.stderr.write(`runner/instance.ts: ${message}\n${usage}\n`);
  process.exit(2);
}

if (!name) fail("which service?");
if (!Number.isInteger(offset)) fail(`MESH_PORT_OFFSET=${process.env.MESH_PORT_OFFSET} is not a whole number`);
const envPort = process.env.PORT ? Number(process.env.PORT) : undefined;
const host = process.env.HOST ?? "127.0.0.1";

if (name === "reflection") {
  const logger = createLogger().child({ instance: process.env.MESH_INSTANCE ?? "reflection" });
  // Everything a client can call through the edge: the shop, health and the per-service admin (x-shop-service), reflection.
  const services = [...[...(await loadServiceDescriptors(topology)).values()].flat(), healthService, ...instanceAdminServices, ...reflectionServices];
  // Only reflection: the platform's own would list what this process serves, which is nothing.
  const server = createServer({ logger, port: envPort ?? edgePorts(topology, offset).reflection, host, reflection: false });
  const reflection = createReflection(() => services);
  server.register("platform", ReflectionV1, reflection.v1);
  server.register("platform", ReflectionV1Alpha, reflection.v1alpha);
  const { port } = await server.listen();
  exitOnSignals(logger, () => server.drain());
  logger.info({ port, services: services.map((s) => s.typeName) }, "listening");
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
    remoteAddress: process.env.SHOP_REMOTE_ADDRESS ?? `http://127.0.0.1:${ports.outbound}`,
  });
  // Signal handlers first: whoever reads "listening" may stop the process at once.
  exitOnSignals(logger, () => shop.stop());
  logger.info({ port: shop.port, service: name, replica, remote: process.env.SHOP_REMOTE_ADDRESS ?? `http://127.0.0.1:${ports.outbound}` }, "listening");
}
