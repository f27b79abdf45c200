// A small mesh for the fault drills and the sidecar benchmark, built from the
// same generator as `make mesh`: two (or more) replicas of EchoService
// (test/fixtures/echo-server.ts), each behind its own sidecar's inbound
// listener, and a caller whose sidecar's outbound listener routes
// /mesh.testing.v1.EchoService/* to them. The Envoy configs come from
// envoy/sidecar.ts with the EchoService contract, so routes, retries,
// timeouts, health checks, outlier detection and circuit breakers are the
// mesh's own; only the circuit-breaker limits can be made smaller. Count, a
// public stream, goes to the caller's echo-public-streams cluster (its own
// budget, envoy/policy.ts); every unary method to echo.
//
// With `mtls: true` the sidecars speak mTLS to each other as `make mesh`'s
// do (envoy/mtls.ts: certificates from a CA made for this mesh, SDS files,
// RBAC letting only the caller through); by default they speak cleartext.
//
// Everything is on loopback, at a port block checked free (the scheme of
// envoy/ports.ts from a random base), and every process is killed by stop()
// or, failing that, when the test process exits.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Topology } from "@shop/platform";
import { EchoService } from "../../gen/mesh/testing/v1/echo_pb.js";
import type { GetCountersResponse } from "../../gen/mesh/testing/v1/echo_pb.js";
import { loadServiceDescriptors } from "../../envoy/contracts.ts";
import { findEnvoy } from "../../envoy/find-envoy.ts";
import { CALLER_LIMITS, PUBLIC_STREAM_LIMITS } from "../../envoy/policy.ts";
import type { CallerLimits, StreamLimits } from "../../envoy/policy.ts";
import { checkPortScheme, instancesOf } from "../../envoy/ports.ts";
import type { Instance, InstancePorts } from "../../envoy/ports.ts";
import { sdsFileNames, sdsResources } from "../../envoy/mtls.ts";
import type { MeshTls } from "../../envoy/mtls.ts";
import { sidecarConfig } from "../../envoy/sidecar.ts";
import { ensureMeshCerts, identityDir } from "../../runner/mesh-certs.ts";
import { toYaml } from "../../envoy/yaml.ts";
import { repoRoot } from "../support/process.ts";

/** The upstream cluster's name in the caller's sidecar: its stats are cluster.echo.*. */
export const ECHO_CLUSTER = "echo";
const CALLER = "caller";
const START_TIMEOUT_MS = 30_000;

export interface DrillMeshOptions {
  /** Replicas of the echo service. Default 2. */
  replicas?: number;
  /** Extra environment for each replica, by index: `[{}, { ECHO_UNAVAILABLE_EVERY: "2" }]`. */
  replicaEnv?: ReadonlyArray<Record<string, string>>;
  /** Circuit breakers of the caller's cluster for echo's unary calls. Default CALLER_LIMITS (envoy/policy.ts). */
  callerLimits?: Partial<CallerLimits>;
  /** Circuit breakers of the caller's cluster for echo's public streams (Count and the other streaming methods). Default PUBLIC_STREAM_LIMITS. */
  publicStreamLimits?: Partial<StreamLimits>;
  /** LOG_LEVEL of the replicas. Default "warn": a drill makes thousands of calls. */
  appLogLevel?: string;
  /** mTLS between the sidecars and RBAC on echo's inbound listeners, as generated for `make mesh`. Default false (cleartext). */
  mtls?: boolean;
}

export interface DrillProcess {
  readonly name: string;
  readonly pid: number;
  readonly log: string;
  readonly exited: Promise<void>;
  running(): boolean;
  /** Sends the signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface DrillReplica {
  /** "echo-0": also its EchoResponse.instance. */
  readonly name: string;
  readonly ports: InstancePorts;
  /** The app itself, bypassing every proxy. */
  readonly appUrl: string;
  /** Its sidecar's inbound listener, what the caller's sidecar calls (https with mtls: a client certificate of dir/certs needed). */
  readonly inboundUrl: string;
  readonly app: DrillProcess;
  readonly sidecar: DrillProcess;
  /** GetCounters asked of the app directly. */
  counters(): Promise<GetCountersResponse>;
}

export interface DrillMesh {
  /** The caller sidecar's outbound listener: what an app would have as SHOP_REMOTE_ADDRESS. */
  readonly callerUrl: string;
  readonly callerAdminPort: number;
  readonly caller: DrillProcess;
  readonly replicas: readonly DrillReplica[];
  readonly limits: CallerLimits;
  readonly publicStreamLimits: StreamLimits;
  readonly dir: string;
  /** A typed client through the caller's sidecar. */
  echo(): Client<typeof EchoService>;
  /** The caller sidecar's counters and gauges whose names start with prefix (default "cluster.echo."). */
  stats(prefix?: string): Promise<Stats>;
  /** Kills every process and removes the folder. */
  stop(): Promise<void>;
}

/** Envoy counters and gauges by full name; a name Envoy has not created reads as 0. */
export interface Stats {
  get(name: string): number;
  readonly all: ReadonlyMap<string, number>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function drillTopology(base: number, replicas: number): Topology {
  return {
    services: {
      [ECHO_CLUSTER]: { package: "mesh.testing.v1", replicas, port: base, calls: [] },
      // The caller serves EchoService too; only its sidecar runs.
      [CALLER]: { package: "mesh.testing.v1", replicas: 1, port: base + 40, calls: [ECHO_CLUSTER] },
    },
    // Not started; stated so the port scheme claims nothing near 8080.
    edge: { port: base + 80, exposes: [] },
  };
}

/** A base port whose whole block (echo, caller and the unused edge, base..base+82) is free, below the ephemeral range. */
async function freeBase(replicas: number): Promise<{ base: number; topology: Topology }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 22_000 + 100 * Math.floor(Math.random() * 100);
    const topology = drillTopology(base, replicas);
    checkPortScheme(topology);
    const ports = instancesOf(topology).flatMap((i) => [i.ports.app, i.ports.inbound, i.ports.outbound, i.ports.admin]);
    const free = await Promise.all(ports.map(portFree));
    if (free.every(Boolean)) return { base, topology };
  }
  throw new Error("no free block of loopback ports for the drill mesh after 20 tries");
}

function startProcess(dir: string, name: string, command: readonly string[], env: NodeJS.ProcessEnv): DrillProcess {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(command[0], command.slice(1), { cwd: repoRoot, env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      live.delete(child);
      resolve();
    });
    child.once("error", (err) => {
      live.delete(child);
      writeFileSync(log, `cannot start ${command[0]}: ${err.message}\n`, { flag: "a" });
      resolve();
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  return {
    name,
    pid: child.pid ?? -1,
    log,
    exited,
    running,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (running()) child.kill(signal);
      await exited;
    },
  };
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

/** Polls until check() is true; names what it waited for and the processes' last lines when it gives up. */
async function waitFor(what: string, check: () => Promise<boolean>, procs: readonly DrillProcess[], timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => !p.running());
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}; its log:\n${tail(dead.log)}`);
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counters and gauges of an Envoy's admin /stats (text format), histograms left out. */
export async function readStats(adminPort: number, prefix: string): Promise<Stats> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/stats?filter=${encodeURIComponent(`^${prefix.replaceAll(".", "\\.")}`)}`, {
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`admin :${adminPort} /stats answered ${res.status}`);
  const all = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^(\S+): (\d+)$/.exec(line);
    if (m) all.set(m[1], Number(m[2]));
  }
  return { all, get: (name) => all.get(name) ?? 0 };
}

/** What a counter grew by between two readings. */
export function grew(before: Stats, after: Stats, name: string): number {
  return after.get(name) - before.get(name);
}

export async function startDrillMesh(options: DrillMeshOptions = {}): Promise<DrillMesh> {
  const replicas = options.replicas ?? 2;
  const limits: CallerLimits = { ...CALLER_LIMITS, ...options.callerLimits };
  const publicStreamLimits: StreamLimits = { ...PUBLIC_STREAM_LIMITS, ...options.publicStreamLimits };
  const envoy = findEnvoy();
  const { topology } = await freeBase(replicas);
  const descriptors = await loadServiceDescriptors(topology);
  const instances = instancesOf(topology);
  const endpointsOf = (service: string) => instances.filter((i) => i.service === service).map((i) => ({ address: "127.0.0.1", port: i.ports.inbound }));
  const dir = mkdtempSync(join(tmpdir(), "shop-drill-mesh-"));
  const procs: DrillProcess[] = [];

  // mTLS: a CA and a certificate per service under dir/certs, and each service's two SDS files in dir.
  const meshTlsOf = (service: string): MeshTls | undefined => {
    if (!options.mtls) return undefined;
    const names = sdsFileNames(service);
    const resources = sdsResources(identityDir(join(dir, "certs"), service));
    writeFileSync(join(dir, names.cert), toYaml(resources.cert));
    writeFileSync(join(dir, names.ca), toYaml(resources.ca));
    return { identity: service, certSds: join(dir, names.cert), caSds: join(dir, names.ca), spiffe: {} };
  };
  if (options.mtls) ensureMeshCerts(join(dir, "certs"), [ECHO_CLUSTER, CALLER]);

  const configFor = (i: Instance): string => {
    const config = sidecarConfig({
      topology,
      descriptors,
      service: i.service,
      node: i.name,
      ports: i.ports,
      inboundAddress: "127.0.0.1",
      endpointsOf,
      discovery: "STATIC",
      callerLimits: limits,
      publicStreamLimits,
      mtls: meshTlsOf(i.service),
    });
    const file = join(dir, `sidecar-${i.name}.yaml`);
    // Plain JSON data first: keys the builders left undefined are dropped, as envoy/generate.ts does.
    writeFileSync(file, toYaml(JSON.parse(JSON.stringify(config)), "Drill mesh, from envoy/sidecar.ts."));
    return file;
  };
  const startEnvoy = (i: Instance) =>
    startProcess(
      dir,
      `sidecar-${i.name}`,
      [envoy, "-c", configFor(i), "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn", "--file-flush-interval-msec", "500"],
      process.env,
    );

  try {
    const echoInstances = instances.filter((i) => i.service === ECHO_CLUSTER);
    const apps = echoInstances.map((i) =>
      startProcess(dir, i.name, [process.execPath, "test/fixtures/echo-server.ts"], {
        ...process.env,
        PORT: String(i.ports.app),
        ECHO_INSTANCE: i.name,
        LOG_LEVEL: options.appLogLevel ?? "warn",
        ...options.replicaEnv?.[i.replica],
      }),
    );
    procs.push(...apps);
    // Apps first: the sidecars' first health checks then find them serving.
    await waitFor(
      "the echo replicas to serve",
      async () => (await Promise.all(echoInstances.map((i) => get(`http://127.0.0.1:${i.ports.app}/healthz`)))).every((r) => r?.status === 200),
      procs,
    );
    const ready = async (ports: readonly number[]) => (await Promise.all(ports.map((p) => get(`http://127.0.0.1:${p}/ready`)))).every((r) => r?.status === 200);
    // Then the replicas' sidecars, and the caller's last: its first health
    // checks find every inbound listener up, so no replica starts out failed.
    const sidecars = echoInstances.map(startEnvoy);
    procs.push(...sidecars);
    await waitFor("the replicas' sidecars to be ready", () => ready(echoInstances.map((i) => i.ports.admin)), procs);
    const callerInstance = instances.find((i) => i.service === CALLER)!;
    const caller = startEnvoy(callerInstance);
    procs.push(caller);
    await waitFor("the caller's sidecar to be ready", () => ready([callerInstance.ports.admin]), procs);
    // Every budget's cluster for echo (echo, echo-public-streams) health-checks the replicas on its own.
    await waitFor(
      `the caller's sidecar to see ${replicas} healthy echo replicas in every cluster`,
      async () => {
        const stats = await readStats(callerInstance.ports.admin, `cluster.${ECHO_CLUSTER}`);
        const healthy = [...stats.all].filter(([name]) => name.endsWith(".membership_healthy"));
        return healthy.length >= 2 && healthy.every(([, n]) => n === replicas);
      },
      procs,
    );

    const callerUrl = `http://127.0.0.1:${callerInstance.ports.outbound}`;
    const drillReplicas: DrillReplica[] = echoInstances.map((i, index) => {
      const appUrl = `http://127.0.0.1:${i.ports.app}`;
      const direct = createClient(EchoService, createGrpcTransport({ baseUrl: appUrl }));
      return {
        name: i.name,
        ports: i.ports,
        appUrl,
        inboundUrl: `${options.mtls ? "https" : "http"}://127.0.0.1:${i.ports.inbound}`,
        app: apps[index],
        sidecar: sidecars[index],
        counters: () => direct.getCounters({}, { timeoutMs: 5000 }),
      };
    });
    return {
      callerUrl,
      callerAdminPort: callerInstance.ports.admin,
      caller,
      replicas: drillReplicas,
      limits,
      publicStreamLimits,
      dir,
      echo: () => createClient(EchoService, createGrpcTransport({ baseUrl: callerUrl })),
      stats: (prefix = `cluster.${ECHO_CLUSTER}.`) => readStats(callerInstance.ports.admin, prefix),
      async stop() {
        await Promise.all(procs.map((p) => p.kill("SIGKILL")));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(procs.map((p) => p.kill("SIGKILL")));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
