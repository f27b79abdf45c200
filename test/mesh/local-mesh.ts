// The whole mesh as `make mesh` starts it (runner/mesh.ts as a child
// process), on a PostgreSQL database per service and a JetStream stream of
// its own, at a port offset of its own, for tests and fault drills.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { loadTopology } from "@shop/platform";
import type { InstancePorts, EdgePorts } from "../../envoy/ports.ts";
import { getSharedNats } from "../support/nats.ts";
import { getSharedPostgres } from "../support/postgres.ts";
import type { TestDatabases } from "../support/postgres.ts";
import { repoRoot } from "../support/process.ts";

/** runner/mesh.ts's MESH_DIR/instances.json. */
export interface MeshState {
  readonly edge: EdgePorts & { url: string };
  readonly instances: ReadonlyArray<{ name: string; service: string; replica: number; ports: InstancePorts; log: string; sidecarLog: string }>;
  readonly processes: ReadonlyArray<{ name: string; role: string; pid: number; argv: string[]; log: string }>;
  readonly logs: string;
}

export interface LocalMesh {
  /** http://127.0.0.1:<edge port> */
  readonly edgeUrl: string;
  /** 127.0.0.1:<edge port>, for grpcurl. */
  readonly edgeAddress: string;
  readonly state: MeshState;
  readonly dir: string;
  /** Each service's PostgreSQL URL (shared by its replicas), by service name. */
  readonly databaseUrls: Readonly<Record<string, string>>;
  /** Everything runner/mesh.ts printed. */
  readonly output: string[];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The JSON lines of one process's log (an instance, "sidecar-<instance>", "edge"), as far as written. */
  logLines(name: string): Array<Record<string, unknown>>;
  /** Sends the signal (Ctrl-C is SIGINT) and waits for the runner to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops the mesh if it still runs, then drops its databases and folder. */
  dispose(): Promise<void>;
}

export interface LocalMeshOptions {
  /** Extra environment for every process. */
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** Where port offsets are picked: a suite gets a range of its own (test/mesh-drills/mtls.test.ts). Default 10,000 to 21,900, in steps of 100. */
  offsets?: { from: number; count: number };
}

const services = Object.keys(loadTopology().services);

/** Kills what a runner that could not stop itself left running (its children are in their own process groups). */
function killRecorded(dir: string): void {
  let state: MeshState;
  try {
    state = JSON.parse(readFileSync(join(dir, "instances.json"), "utf8")) as MeshState;
  } catch {
    return;
  }
  for (const p of state.processes) {
    try {
      process.kill(-p.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

const live = new Set<{ child: ChildProcess; dir: string }>();
process.once("exit", () => {
  for (const m of live) {
    m.child.kill("SIGKILL");
    killRecorded(m.dir);
  }
});

async function startOnce(databases: TestDatabases, natsUrl: string, offset: number, options: LocalMeshOptions): Promise<LocalMesh | "ports-taken"> {
  const dir = mkdtempSync(join(tmpdir(), "shop-mesh-"));
  const id = randomBytes(6).toString("hex");
  const child = spawn(process.execPath, ["runner/mesh.ts"], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...databases.env,
      NATS_URL: natsUrl,
      EVENT_STREAM: `MESH_${id}`,
      EVENT_SUBJECT_PREFIX: `mesh.${id}`,
      MESH_DIR: dir,
      MESH_PORT_OFFSET: String(offset),
      MESH_START_TIMEOUT_MS: String(options.startTimeoutMs ?? 90_000),
      DRAIN_TIMEOUT_MS: "2000",
      LOG_LEVEL: "info",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const handle = { child, dir };
  live.add(handle);
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => {
      live.delete(handle);
      resolve({ code, signal });
    }),
  );
  const ready = new Promise<string | undefined>((resolve) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        output.push(line);
        const m = /^mesh ready in .* edge (http:\/\/\S+)/.exec(line);
        if (m) resolve(m[1]);
      });
    }
    void exited.then(() => resolve(undefined));
  });
  const edgeUrl = await ready;
  if (!edgeUrl) {
    await exited;
    rmSync(dir, { recursive: true, force: true });
    if (output.some((l) => l.includes("is in use"))) return "ports-taken";
    throw new Error(`runner/mesh.ts did not start:\n${output.join("\n")}`);
  }
  const state = JSON.parse(readFileSync(join(dir, "instances.json"), "utf8")) as MeshState;
  const stop = async (signal: NodeJS.Signals = "SIGINT") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    edgeUrl,
    edgeAddress: edgeUrl.replace("http://", ""),
    state,
    dir,
    databaseUrls: databases.urls,
    output,
    child,
    exited,
    logLines(name) {
      let text: string;
      try {
        text = readFileSync(join(state.logs, `${name}.log`), "utf8");
      } catch {
        return [];
      }
      const out: Array<Record<string, unknown>> = [];
      for (const line of text.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          out.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // A line still being written.
        }
      }
      return out;
    },
    stop,
    async dispose() {
      const outcome = await Promise.race([stop("SIGINT"), new Promise((r) => setTimeout(r, 30_000, "late"))]);
      if (outcome === "late") {
        child.kill("SIGKILL");
        killRecorded(dir);
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the mesh on fresh databases of the shared test PostgreSQL and a
 * stream of its own on the shared nats-server, at a random port offset
 * (another offset when some port is taken).
 */
export async function startLocalMesh(options: LocalMeshOptions = {}): Promise<LocalMesh> {
  const [pg, nats] = await Promise.all([getSharedPostgres(), getSharedNats()]);
  const databases = await pg.createDatabases(services);
  for (let attempt = 1; attempt <= 4; attempt++) {
    // Below 32768, where the kernel's ephemeral ports begin: 10000..21900.
    const offset = (options.offsets?.from ?? 10_000) + 100 * Math.floor(Math.random() * (options.offsets?.count ?? 120));
    const mesh = await startOnce(databases, nats.url, offset, options);
    if (mesh !== "ports-taken") {
      const dispose = mesh.dispose;
      return {
        ...mesh,
        async dispose() {
          await dispose();
          await databases.drop();
        },
      };
    }
  }
  await databases.drop();
  throw new Error("no free port range for the mesh after 4 offsets");
}
