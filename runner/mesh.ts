// `make mesh`: the whole shop as separate OS processes on loopback, the way
// it runs in production. Every replica of every service (runner/instance.ts),
// each with its Envoy sidecar, the edge Envoy and its backend (reflection, the
// mesh-wide operations RPCs and the browser app: runner/instance.ts edge-backend), on
// PostgreSQL (a database per service, shared by that service's replicas) and
// NATS JetStream. It waits until everything is healthy, as the edge sees it,
// prints the edge's address and where the logs are, and on Ctrl-C (or
// SIGTERM) stops everything it started, in order, leaving no process behind.
//
// Environment:
//   MESH_DIR              runtime folder: envoy/ (configs), logs/, keys/, instances.json   default ./.mesh
//   MESH_KEYS_DIR         token keys (runner/keys.ts layout), made when missing      default <MESH_DIR>/keys
//   (MESH_DIR/certs: the mesh CA and one certificate per service, the edge and the edge backend, for mTLS;
//    made when missing, kept while valid: runner/mesh-certs.ts, which also re-issues one)
//   MESH_PORT_OFFSET      added to every port of the scheme (envoy/ports.ts)        default 0
//   MESH_START_TIMEOUT_MS how long everything may take to become healthy            default 60000
//   EDGE_REFLECTION       "off" answers grpc.reflection.* with UNIMPLEMENTED at the edge
//   EDGE_TLS              "1": the edge serves TLS only (h2 and http/1.1 by ALPN) with a self-signed
//                         development certificate, MESH_DIR/edge-tls/tls.crt (runner/edge-tls.ts): trust that file
//   MESH_WEB_ORIGINS      comma-separated origins for the edge's CORS policy        default the Vite dev server
//   DATABASE_POOL_SIZE    connections per instance                                  default 5 here (10 instances share one server)
//   STORE=postgres with every <SERVICE>_DATABASE_URL: use that PostgreSQL; otherwise infra/postgres.sh up
//   NATS_URL              use that nats-server; otherwise infra/nats.sh up
//   OTEL_EXPORTER_OTLP_ENDPOINT  services and Envoys export spans there (OTLP/HTTP)
//   ENVOY_BIN             the envoy binary; default the one `make envoy` installs (envoy/find-envoy.ts)
// PostgreSQL and nats-server are stopped at the end only when this run started them.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { databaseUrlVariable, loadTopology, writeKeyDir } from "@shop/platform";
import { findEnvoy } from "../envoy/find-envoy.ts";
import { EDGE_BACKEND_IDENTITY } from "../envoy/mtls.ts";
import { ensureMeshCerts, identityDir, meshIdentities } from "./mesh-certs.ts";
import { SERVICE_HEADER } from "../envoy/edge.ts";
import { ensureEdgeCert } from "./edge-tls.ts";
import { generateConfigs, writeConfigs } from "../envoy/generate.ts";
import type { TracingExport } from "../envoy/http.ts";
import { edgePorts, instancesOf } from "../envoy/ports.ts";
import { loadServiceDescriptors } from "../envoy/contracts.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/health/v1/health_pb.js";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const env = process.env;
const meshDir = resolve(repoRoot, env.MESH_DIR ?? ".mesh");
const logDir = join(meshDir, "logs");
const configDir = join(meshDir, "envoy");
const certsDir = join(meshDir, "certs");
const stateFile = join(meshDir, "instances.json");
const offset = Number(env.MESH_PORT_OFFSET ?? 0);
const startTimeoutMs = Number(env.MESH_START_TIMEOUT_MS ?? 60_000);
const reflection = !/^(off|0|false|no)$/i.test(env.EDGE_REFLECTION ?? "on");
const edgeTlsOn = /^(1|on|true|yes)$/i.test(env.EDGE_TLS ?? "");
const edgeTlsDir = join(meshDir, "edge-tls");
const topology = loadTopology();
const edge = edgePorts(topology, offset);
const edgeUrl = `${edgeTlsOn ? "https" : "http"}://127.0.0.1:${edge.listener}`;
const instances = instancesOf(topology, offset);
const shown = (path: string) => relative(process.cwd(), path) || ".";
const services = Object.keys(topology.services);

/** A process this run started: an app, a sidecar, the edge, the edge's backend. */
interface Proc {
  readonly name: string;
  readonly role: "app" | "sidecar" | "edge" | "edge-backend";
  readonly log: string;
  readonly child: ChildProcess;
  readonly argv: readonly string[];
  readonly exited: Promise<void>;
  running: boolean;
}

const procs: Proc[] = [];
const startedInfra: Array<"postgres" | "nats"> = [];
let stopping: Promise<void> | undefined;

function say(line = ""): void {
  process.stdout.write(`${line}\n`);
}

function fail(message: string): never {
  throw new MeshError(message);
}

class MeshError extends Error {}

// ---------------------------------------------------------------- processes

/**
 * Starts a process in its own process group, with stdout and stderr appended
 * to its log file. Its own group: Ctrl-C reaches this runner only, which then
 * stops everything in order instead of everything dying at once.
 */
function start(name: string, role: Proc["role"], command: string, args: string[], childEnv: NodeJS.ProcessEnv): Proc {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(command, args, { cwd: repoRoot, env: childEnv, stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  const proc: Proc = {
    name,
    role,
    log,
    child,
    argv: [command, ...args],
    running: true,
    exited: new Promise<void>((done) => {
      child.once("exit", () => {
        proc.running = false;
        done();
      });
      child.once("error", (err) => {
        proc.running = false;
        writeFileSync(log, `cannot start ${command}: ${err.message}\n`, { flag: "a" });
        done();
      });
    }),
  };
  procs.push(proc);
  return proc;
}

function signal(proc: Proc, sig: NodeJS.Signals): void {
  if (!proc.running || proc.child.pid === undefined) return;
  try {
    process.kill(-proc.child.pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

async function stopAll(procsToStop: readonly Proc[], graceMs: number): Promise<void> {
  const live = procsToStop.filter((p) => p.running);
  for (const p of live) signal(p, "SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((done) => (timer = setTimeout(() => done("late"), graceMs)));
  const outcome = await Promise.race([Promise.all(live.map((p) => p.exited)).then(() => "done" as const), late]);
  clearTimeout(timer);
  if (outcome === "late") {
    for (const p of live.filter((x) => x.running)) {
      say(`  ${p.name} did not stop within ${graceMs} ms: killing it`);
      signal(p, "SIGKILL");
    }
    await Promise.all(live.map((p) => p.exited));
  }
}

function lastLines(path: string, count = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-count).map((l) => `    ${l}`).join("\n");
  } catch {
    return "    (no log)";
  }
}

/** Processes of an earlier run that died without cleaning up (its instances.json is still there). */
function killLeftovers(): void {
  if (!existsSync(stateFile)) return;
  let recorded: Array<{ name: string; pid: number; argv: string[] }> = [];
  try {
    recorded = (JSON.parse(readFileSync(stateFile, "utf8")) as { processes?: typeof recorded }).processes ?? [];
  } catch {
    recorded = [];
  }
  for (const r of recorded) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${r.pid}/cmdline`, "utf8");
    } catch {
      continue; // Not running any more.
    }
    // Only a process still running the very command this runner started then.
    if (cmdline.split("\0").filter(Boolean).join(" ") !== r.argv.join(" ")) continue;
    say(`stopping ${r.name} (pid ${r.pid}), left over from an earlier run`);
    try {
      process.kill(-r.pid, "SIGKILL");
    } catch {
      // It exited in between.
    }
  }
  rmSync(stateFile, { force: true });
}

// ---------------------------------------------------------------- infrastructure

function script(path: string, ...args: string[]): string {
  const result = spawnSync(join(repoRoot, path), args, { cwd: repoRoot, env, encoding: "utf8" });
  if (result.error) fail(`${path} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) fail(`${path} ${args.join(" ")} failed:\n${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** "export NAME=value" lines, as infra/*.sh env print them. */
function parseExports(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function infrastructure(): Record<string, string> {
  const out: Record<string, string> = { BUS: "nats", DATABASE_POOL_SIZE: env.DATABASE_POOL_SIZE ?? "5" };
  if (env.STORE === "postgres" && services.every((s) => env[databaseUrlVariable(s)])) {
    say("postgres: using the databases given by <SERVICE>_DATABASE_URL");
  } else {
    const wasRunning = spawnSync(join(repoRoot, "infra/postgres.sh"), ["status"], { cwd: repoRoot, env }).status === 0;
    script("infra/postgres.sh", "up");
    if (!wasRunning) startedInfra.push("postgres");
    Object.assign(out, parseExports(script("infra/postgres.sh", "env")));
    say(`postgres: ${wasRunning ? "already running" : "started"} (infra/postgres.sh, data in ${env.INFRA_DIR ?? ".infra"}/postgres)`);
  }
  if (env.NATS_URL) {
    say(`nats: using ${env.NATS_URL}`);
  } else {
    const up = script("infra/nats.sh", "up");
    if (!up.includes("already running")) startedInfra.push("nats");
    Object.assign(out, parseExports(script("infra/nats.sh", "env")));
    say(`nats: ${up.trim()}`);
  }
  return out;
}

/**
 * The token keys of the mesh: MESH_KEYS_DIR (default <mesh dir>/keys), a
 * complete set made by writeKeyDir when missing. Every process verifies with
 * the public set; each gets only its own private keys (users also the
 * user-token key), so no instance can mint another's tokens.
 */
function tokenKeys(): { env: Record<string, string>; signingFile(holder: string): string; dir: string } {
  const dir = resolve(env.MESH_KEYS_DIR ?? join(meshDir, "keys"));
  const holders = [...services, "edge-backend", "operator"];
  if (!existsSync(join(dir, "jwks.json")) || holders.some((h) => !existsSync(join(dir, "signing", `${h}.json`)))) {
    writeKeyDir(dir, [...services, "edge-backend"]);
    say(`token keys: created in ${shown(dir)} (node runner/keys.ts --rotate <role> --dir ${shown(dir)} rotates one)`);
  } else {
    say(`token keys: ${shown(dir)}`);
  }
  // Inline keys from the caller's environment must not override the files.
  return {
    dir,
    env: { SHOP_JWKS: "", SHOP_SIGNING_KEYS: "", SHOP_DEV_KEYS: "", SHOP_JWKS_FILE: join(dir, "jwks.json") },
    signingFile: (holder) => join(dir, "signing", `${holder}.json`),
  };
}

/** The mesh CA and a certificate per identity under MESH_DIR/certs: made when missing or not valid, kept otherwise. */
function meshCertificates(): void {
  const result = ensureMeshCerts(certsDir, meshIdentities(services));
  const made = result.caCreated ? "a new CA and every certificate" : result.issued.length > 0 ? `certificates for ${result.issued.join(", ")}` : "";
  say(`mTLS: ${made ? `made ${made}` : "certificates kept"} in ${shown(certsDir)} (node runner/mesh-certs.ts --dir ${shown(certsDir)} --reissue <service> rotates one)`);
}

function stopInfrastructure(): void {
  for (const which of startedInfra.splice(0).reverse()) {
    const result = spawnSync(join(repoRoot, `infra/${which}.sh`), ["down"], { cwd: repoRoot, env, encoding: "utf8" });
    say(result.status === 0 ? `${which}: stopped (data kept)` : `${which}: could not stop it: ${(result.stderr || result.stdout).trim()}`);
  }
}

// ---------------------------------------------------------------- readiness

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}

async function checkPorts(): Promise<void> {
  const wanted: Array<[number, string]> = [
    [edge.listener, "the edge"],
    [edge.admin, "the edge's admin"],
    [edge.reflection, "the edge backend"],
  ];
  for (const i of instances) {
    wanted.push([i.ports.app, i.name], [i.ports.inbound, `${i.name}'s sidecar (inbound)`], [i.ports.outbound, `${i.name}'s sidecar (outbound)`], [i.ports.admin, `${i.name}'s sidecar (admin)`]);
  }
  for (const [port, owner] of wanted) {
    if (!(await portFree(port))) fail(`127.0.0.1:${port}, for ${owner}, is in use: is another mesh running? Stop it, or set MESH_PORT_OFFSET`);
  }
}

/** undefined while nothing answers at url: what the readiness loop polls for. */
async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

interface ClusterStatus {
  cluster_statuses?: Array<{ name: string; host_statuses?: Array<{ address?: { socket_address?: { port_value?: number } }; health_status?: Record<string, unknown> }> }>;
}

/** Hosts an Envoy does not consider healthy yet: "catalog 127.0.0.1:7212", ... */
async function unhealthyUpstreams(adminPort: number): Promise<string[] | undefined> {
  const res = await get(`http://127.0.0.1:${adminPort}/clusters?format=json`);
  if (res?.status !== 200) return undefined;
  const out: string[] = [];
  for (const c of (JSON.parse(res.body) as ClusterStatus).cluster_statuses ?? []) {
    for (const h of c.host_statuses ?? []) {
      const hs = h.health_status ?? {};
      const failing = Object.entries(hs).some(([k, v]) => v === true && k.startsWith("failed")) || (hs.eds_health_status !== undefined && hs.eds_health_status !== "HEALTHY");
      if (failing) out.push(`${c.name} 127.0.0.1:${h.address?.socket_address?.port_value}`);
    }
  }
  return out;
}

/** What is not ready yet, one line each; empty when everything is. */
async function notReady(healthNames: Map<string, string>): Promise<string[]> {
  const waiting: string[] = [];
  await Promise.all(
    procs.map(async (p) => {
      const i = instances.find((x) => x.name === p.name || `sidecar-${x.name}` === p.name);
      if (p.role === "app" && i && (await get(`http://127.0.0.1:${i.ports.app}/healthz`))?.status !== 200) waiting.push(`${p.name}: not serving on :${i.ports.app} yet`);
      if (p.role === "edge-backend" && (await get(`http://127.0.0.1:${edge.reflection}/healthz`))?.status !== 200) waiting.push(`${p.name}: not serving on :${edge.reflection} yet`);
      if (p.role === "sidecar" || p.role === "edge") {
        const admin = p.role === "edge" ? edge.admin : i!.ports.admin;
        if ((await get(`http://127.0.0.1:${admin}/ready`))?.status !== 200) waiting.push(`${p.name}: Envoy not ready (admin :${admin})`);
        else {
          const unhealthy = await unhealthyUpstreams(admin);
          if (unhealthy === undefined) waiting.push(`${p.name}: no answer from admin :${admin}`);
          else for (const u of unhealthy) waiting.push(`${p.name}: upstream ${u} not healthy yet`);
        }
      }
    }),
  );
  if (waiting.length > 0) return waiting.sort();
  // Last, what an outside caller sees: every service SERVING through the edge.
  const health = createClient(Health, createGrpcTransport({ baseUrl: edgeUrl, nodeOptions: edgeTlsOn ? { ca: readFileSync(join(edgeTlsDir, "tls.crt")) } : undefined }));
  for (const [service, grpcName] of healthNames) {
    try {
      const res = await health.check({ service: grpcName }, { headers: { [SERVICE_HEADER]: service }, timeoutMs: 1000 });
      if (res.status !== HealthCheckResponse_ServingStatus.SERVING) waiting.push(`${service}: ${HealthCheckResponse_ServingStatus[res.status]} through the edge`);
    } catch (err) {
      waiting.push(`${service}: health through the edge failed: ${(err as Error).message}`);
    }
  }
  return waiting;
}

async function waitUntilReady(healthNames: Map<string, string>): Promise<void> {
  const deadline = Date.now() + startTimeoutMs;
  while (!stopping) {
    const dead = procs.find((p) => !p.running);
    if (dead) fail(`${dead.name} exited during start (code ${dead.child.exitCode ?? dead.child.signalCode}); last lines of ${shown(dead.log)}:\n${lastLines(dead.log)}`);
    const waiting = await notReady(healthNames);
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      fail(`not healthy within ${startTimeoutMs} ms (MESH_START_TIMEOUT_MS):\n  ${waiting.join("\n  ")}\nlogs: ${shown(logDir)}/<name>.log`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------- the run

function tracingFromEnv(): TracingExport | undefined {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  const url = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  return { host: url.hostname, port: Number(url.port || (url.protocol === "https:" ? 443 : 80)) };
}

function writeState(): void {
  const state = {
    edge: { url: edgeUrl, ...edge },
    instances: instances.map((i) => ({ ...i, log: join(logDir, `${i.name}.log`), sidecarLog: join(logDir, `sidecar-${i.name}.log`) })),
    processes: procs.map((p) => ({ name: p.name, role: p.role, pid: p.child.pid, argv: p.argv, log: p.log })),
    logs: logDir,
  };
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);
}

async function run(): Promise<void> {
  const began = Date.now();
  if (!Number.isInteger(offset) || offset < 0) fail(`MESH_PORT_OFFSET=${env.MESH_PORT_OFFSET}: expected a whole number ≥ 0`);
  let envoy: string;
  try {
    envoy = findEnvoy();
  } catch (err) {
    fail((err as Error).message);
  }
  mkdirSync(logDir, { recursive: true });
  killLeftovers();
  await checkPorts();
  const infra = infrastructure();

  const tracing = tracingFromEnv();
  const webOrigins = env.MESH_WEB_ORIGINS ? env.MESH_WEB_ORIGINS.split(",").map((o) => o.trim()).filter(Boolean) : undefined;
  meshCertificates();
  // EDGE_TLS=1: the development certificate, kept across runs while it is good, so a client that trusts it keeps trusting it.
  let edgeTls: ReturnType<typeof ensureEdgeCert> | undefined;
  try {
    edgeTls = edgeTlsOn ? ensureEdgeCert(edgeTlsDir) : undefined;
  } catch (err) {
    fail((err as Error).message);
  }
  if (edgeTls) say(`edge TLS: ${edgeTls.created ? "made" : "using"} the development certificate ${shown(edgeTls.certificateChain)} (localhost, 127.0.0.1, ::1)`);
  const configs = await generateConfigs({ target: "local", portOffset: offset, reflection, webOrigins, tracing, certsDir, sdsDir: configDir, edgeTls });
  writeConfigs(configDir, configs);
  const descriptors = await loadServiceDescriptors(topology);
  const healthNames = new Map([...descriptors].map(([service, list]) => [service, list[0].typeName]));

  const node = process.execPath;
  const keys = tokenKeys();
  const appEnv = { ...env, ...infra, ...keys.env, HOST: "127.0.0.1", MESH_PORT_OFFSET: String(offset) };
  for (const i of instances) {
    start(i.name, "app", node, ["runner/instance.ts", i.service, String(i.replica)], {
      ...appEnv,
      PORT: String(i.ports.app),
      SHOP_REMOTE_ADDRESS: `http://127.0.0.1:${i.ports.outbound}`,
      SHOP_SIGNING_KEYS_FILE: keys.signingFile(i.service),
      // Only its sidecar reaches it: SERVICE-only methods take the caller from the verified certificate.
      PEER_IDENTITY: "xfcc",
      MESH_INSTANCE: i.name,
    });
  }
  // Always: besides reflection it serves the browser app and the console's mesh-wide RPCs.
  start("edge-backend", "edge-backend", node, ["runner/instance.ts", "edge-backend"], {
    ...appEnv,
    PORT: String(edge.reflection),
    MESH_INSTANCE: "edge-backend",
    SHOP_SIGNING_KEYS_FILE: keys.signingFile("edge-backend"),
    EDGE_REFLECTION: reflection ? "on" : "off",
    MESH_DISCOVERY: "local",
    MESH_TLS_DIR: identityDir(certsDir, EDGE_BACKEND_IDENTITY),
  });
  // Envoy's own log lines as JSON too, like the access log and the services' lines.
  const envoyArgs = (config: string, concurrency: number) => [
    "-c",
    config,
    "--disable-hot-restart",
    "--concurrency",
    String(concurrency),
    "--log-level",
    env.ENVOY_LOG_LEVEL ?? "warn",
    // Access log lines reach the file within a second (Envoy's default buffers for 10 s).
    "--file-flush-interval-msec",
    "1000",
    "--log-format",
    '{"time":"%Y-%m-%dT%T.%eZ","level":"%l","msg":"%j","logger":"%n"}',
  ];
  for (const c of configs) {
    const config = join(configDir, c.file);
    if (c.kind === "sidecar") start(`sidecar-${c.node}`, "sidecar", envoy, envoyArgs(config, 1), env);
    else if (c.kind === "edge") start("edge", "edge", envoy, envoyArgs(config, 2), env);
  }
  writeState();

  say(`starting ${instances.length} instances, ${instances.length} sidecars and the edge; logs in ${shown(logDir)}/`);
  await waitUntilReady(healthNames);
  if (stopping) return;

  const url = edgeUrl;
  const byService = new Map<string, string[]>();
  for (const i of instances) byService.set(i.service, [...(byService.get(i.service) ?? []), `${i.name} :${i.ports.app} (sidecar :${i.ports.inbound}, admin :${i.ports.admin})`]);
  say();
  say(`mesh ready in ${((Date.now() - began) / 1000).toFixed(1)} s: edge ${url} (gRPC, Connect, gRPC-Web${reflection ? ", reflection" : ""})`);
  say(`  web app        ${url}/    operations console: ${url}/#/console (the whole mesh; operator token: make token MESH=1)`);
  if (!existsSync(join(repoRoot, "web/dist/index.html"))) say("                 (web/dist is not built: `make web`, then reload)");
  for (const [service, lines] of byService) say(`  ${service.padEnd(14)} ${lines.join(", ")}`);
  say(`  edge admin     http://127.0.0.1:${edge.admin}/stats  (each sidecar's admin: its port above, e.g. /stats?filter=upstream_rq_retry)`);
  say(`  logs           ${shown(logDir)}/<instance>.log, sidecar-<instance>.log, edge.log; processes in ${shown(stateFile)}`);
  const trust = edgeTlsOn ? join(edgeTlsDir, "tls.crt") : undefined;
  say(`  try            grpcurl ${trust ? `-cacert ${shown(trust)}` : "-plaintext"} 127.0.0.1:${edge.listener} list`);
  say(`                 curl -s${trust ? ` --cacert ${shown(trust)}` : ""} -H 'content-type: application/json' -d '{"query":"tea"}' ${url}/shop.catalog.v1.CatalogService/SearchProducts`);
  say("  Ctrl-C stops everything.");
}

/** Edge first (no new outside calls), then the apps drain, then the sidecars they called through. */
function shutdown(reason: string): Promise<void> {
  stopping ??= stopEverything(reason);
  return stopping;
}

async function stopEverything(reason: string): Promise<void> {
  if (procs.length === 0 && startedInfra.length === 0) return;
  say(`\n${reason}: stopping the mesh`);
  const drainMs = Number(env.DRAIN_TIMEOUT_MS ?? 10_000) + 5000;
  await stopAll(procs.filter((p) => p.role === "edge"), 5000);
  await stopAll(procs.filter((p) => p.role === "app" || p.role === "edge-backend"), drainMs);
  await stopAll(procs.filter((p) => p.role === "sidecar"), 5000);
  stopInfrastructure();
  rmSync(stateFile, { force: true });
  say("mesh stopped");
}

// A crash of this runner must not leave the mesh running: kill what is left, synchronously.
process.on("exit", () => {
  for (const p of procs) signal(p, "SIGKILL");
});

let signals = 0;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    signals++;
    if (signals > 1) {
      say("second signal: killing everything now");
      process.exit(130);
    }
    void shutdown(sig).then(() => process.exit(0));
  });
}

try {
  await run();
  // Something dying after the start is reported, and the rest keeps running.
  for (const p of procs) {
    void p.exited.then(() => {
      if (!stopping) say(`${p.name} exited (code ${p.child.exitCode ?? p.child.signalCode}); last lines of ${shown(p.log)}:\n${lastLines(p.log, 5)}`);
    });
  }
} catch (err) {
  // A signal during the start has its own shutdown under way: this failure is its consequence.
  if (!stopping) {
    const message = err instanceof MeshError ? err.message : ((err as Error).stack ?? String(err));
    process.stderr.write(`\nmake mesh: ${message}\n`);
    await shutdown("start failed");
    process.exit(1);
  }
}
