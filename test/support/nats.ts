// A throwaway nats-server with JetStream for tests: its own free loopback
// port and a temporary store, killed and started again on the same port and
// store for restart drills. The binary is NATS_SERVER_BIN, else nats-server
// on the PATH (Debian: apt-get install nats-server).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestNats {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The JetStream store directory, kept across stop() and start(). */
  readonly storeDir: string;
  /** Kills the server (SIGKILL, as a crash would; "SIGTERM" to let it shut down). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts connections. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it and deletes its store. */
  dispose(): Promise<void>;
}

export function natsServerBinary(): string {
  return process.env.NATS_SERVER_BIN ?? "nats-server";
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function startTestNats(): Promise<TestNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "shop-nats-"));
  stores.add(storeDir);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const output: string[] = [];

  async function start(): Promise<void> {
    if (child) return;
    const proc = spawn(natsServerBinary(), ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    children.add(proc);
    output.length = 0;
    const keep = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.length > 200) output.shift();
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    let failed: Error | undefined;
    proc.once("error", (err) => (failed = err));
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    void exited.then(() => {
      children.delete(proc);
      if (child === proc) child = undefined;
    });
    // "Server is ready" is printed once JetStream has recovered its store and the client port listens.
    const end = Date.now() + 15_000;
    while (!output.join("").includes("Server is ready") || !(await accepts(port))) {
      if (failed) throw new Error(`cannot start ${natsServerBinary()}: ${failed.message} (install nats-server or set NATS_SERVER_BIN)`);
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}: ${output.join("")}`);
      if (Date.now() > end) throw new Error(`nats-server did not become ready on ${port}: ${output.join("")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    await exited;
    child = undefined;
  }

  await start();
  const handle: TestNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    async dispose() {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
      stores.delete(storeDir);
    },
  };
  return handle;
}

let shared: Promise<TestNats> | undefined;

/** One server for the whole test process, started on first use, killed when the process exits. */
export function getSharedNats(): Promise<TestNats> {
  shared ??= startTestNats();
  return shared;
}

const children = new Set<ChildProcess>();
const stores = new Set<string>();

// Synchronous on purpose: "exit" listeners cannot wait. Leaves no server
// behind even when mocha ends the process with --exit.
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of stores) rmSync(dir, { recursive: true, force: true });
});
