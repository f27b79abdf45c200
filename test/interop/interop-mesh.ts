// The interop server behind a sidecar pair made by the mesh's own generator
// (envoy/sidecar.ts): the callee's sidecar (inbound listener → the server on
// loopback) and a caller's sidecar (outbound listener → a health-checked,
// load-balanced cluster of the callee's inbound listeners). The interop
// client talks to the caller's outbound listener, as a service of the mesh
// talks to its SHOP_REMOTE_ADDRESS.
//
// The topology is a two-service one made here: "interop" (the server) and
// "interop-caller" (only its sidecar runs), which topology.json-style rules
// let call interop. The services each side routes are what the interop
// server serves and declares: grpc.testing.TestService (first, so the
// caller's health checks ask about it), grpc.testing.UnimplementedService
// (declared in test.proto and never served, so the server itself answers
// UNIMPLEMENTED rather than the caller's sidecar answering PERMISSION_DENIED),
// and ORCA's OpenRcaService. These methods have no mesh options: public, no
// deadline, not retried, as the generator treats any such method.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService, Registry } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";
import { findEnvoy } from "../../envoy/find-envoy.ts";
import { checkPortScheme, instancesOf } from "../../envoy/ports.ts";
import type { Instance } from "../../envoy/ports.ts";
import { sidecarConfig } from "../../envoy/sidecar.ts";
import { toYaml } from "../../envoy/yaml.ts";
import { readStats } from "../mesh-drills/drill-mesh.ts";
import { repoRoot, startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";
import { ORCA_SERVICE, TEST_SERVICE, UNIMPLEMENTED_SERVICE } from "./test-service.ts";

/** The callee's topology name: the caller's cluster for it, and its stats prefix cluster.interop.*. */
export const INTEROP_CLUSTER = "interop";
const CALLER = "interop-caller";
const START_TIMEOUT_MS = 30_000;

export interface InteropMesh {
  /** The caller sidecar's outbound listener: where the interop client connects. */
  readonly callerPort: number;
  readonly callerAdminPort: number;
  readonly calleeAdminPort: number;
  readonly server: ServerProcess;
  readonly dir: string;
  /** The last lines of both sidecars' logs (access log lines included), for a failure message. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

interface Proc {
  readonly name: string;
  readonly log: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  running(): boolean;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function interopTopology(base: number): Topology {
  return {
    services: {
      [INTEROP_CLUSTER]: { package: "grpc.testing", replicas: 1, port: base, calls: [] },
      [CALLER]: { package: "grpc.testing", replicas: 1, port: base + 40, calls: [INTEROP_CLUSTER] },
    },
    // Not started; stated so the port scheme claims nothing near 8080.
    edge: { port: base + 80, exposes: [] },
  };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A topology whose every port is free, below the ephemeral range. */
async function freeTopology(): Promise<Topology> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const topology = interopTopology(22_000 + 100 * Math.floor(Math.random() * 100));
    checkPortScheme(topology);
    const ports = instancesOf(topology).flatMap((i) => [i.ports.app, i.ports.inbound, i.ports.outbound, i.ports.admin]);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return topology;
  }
  throw new Error("no free block of loopback ports for the interop mesh after 20 tries");
}

function startEnvoy(dir: string, name: string, config: string): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const args = ["-c", config, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn", "--file-flush-interval-msec", "200"];
  const child = spawn(findEnvoy(), args, { cwd: repoRoot, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (err) => {
      writeFileSync(log, `cannot start envoy: ${err.message}\n`, { flag: "a" });
      resolve();
    });
  }).then(() => void live.delete(child));
  return { name, log, child, exited, running: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined };
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, procs: readonly Proc[]): Promise<void> {
  const end = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const dead = procs.find((p) => !p.running());
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}; its log:\n${tail(dead.log, 20)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${START_TIMEOUT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function ready(adminPort: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/ready`, { signal: AbortSignal.timeout(1000) });
  await res.text();
  return res.status === 200;
}

/** Starts the interop server (PORT from the topology) and both sidecars; resolves once the caller sees the server healthy. */
export async function startInteropMesh(registry: Registry, serverEnv: Record<string, string> = {}): Promise<InteropMesh> {
  const served = [TEST_SERVICE, UNIMPLEMENTED_SERVICE, ORCA_SERVICE].map((name) => {
    const service = registry.getService(name);
    if (!service) throw new Error(`the interop descriptor set has no ${name}`);
    return service;
  });
  const topology = await freeTopology();
  const descriptors = new Map<string, readonly DescService[]>([
    [INTEROP_CLUSTER, served],
    [CALLER, []],
  ]);
  const instances = instancesOf(topology);
  const callee = instances.find((i) => i.service === INTEROP_CLUSTER)!;
  const caller = instances.find((i) => i.service === CALLER)!;
  const dir = mkdtempSync(join(tmpdir(), "shop-interop-mesh-"));
  const configFor = (i: Instance): string => {
    const config = sidecarConfig({
      topology,
      descriptors,
      service: i.service,
      node: i.name,
      ports: i.ports,
      inboundAddress: "127.0.0.1",
      endpointsOf: (service) => instances.filter((x) => x.service === service).map((x) => ({ address: "127.0.0.1", port: x.ports.inbound })),
      discovery: "STATIC",
    });
    const file = join(dir, `sidecar-${i.name}.yaml`);
    // Plain JSON data first: keys the builders left undefined are dropped, as envoy/generate.ts does.
    writeFileSync(file, toYaml(JSON.parse(JSON.stringify(config)), "Interop mesh, from envoy/sidecar.ts."));
    return file;
  };

  const procs: Proc[] = [];
  let server: ServerProcess | undefined;
  const stop = async () => {
    for (const p of procs) if (p.running()) p.child.kill("SIGKILL");
    await Promise.all([...procs.map((p) => p.exited), server?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    server = await startServerProcess("test/interop/interop-server.ts", { ...serverEnv, PORT: String(callee.ports.app) });
    // The callee's sidecar first: the caller's first health checks then find it up.
    procs.push(startEnvoy(dir, `sidecar-${callee.name}`, configFor(callee)));
    await waitFor("the interop server's sidecar to be ready", () => ready(callee.ports.admin), procs);
    procs.push(startEnvoy(dir, `sidecar-${caller.name}`, configFor(caller)));
    await waitFor("the caller's sidecar to be ready", () => ready(caller.ports.admin), procs);
    await waitFor(
      "the caller's sidecar to see the interop server healthy",
      async () => (await readStats(caller.ports.admin, `cluster.${INTEROP_CLUSTER}.`)).get(`cluster.${INTEROP_CLUSTER}.membership_healthy`) === 1,
      procs,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    callerPort: caller.ports.outbound,
    callerAdminPort: caller.ports.admin,
    calleeAdminPort: callee.ports.admin,
    server,
    dir,
    logTail: (lines = 10) => procs.map((p) => `--- ${p.name}\n${tail(p.log, lines)}`).join("\n"),
    stop,
  };
}
