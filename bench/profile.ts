// Where a benchmark server spends its time: `node bench/profile.ts [a|b|c]`
// (default c, the platform; d is its gRPC path without the pipeline) runs that server under `node --cpu-prof`, pinned
// like bench/run.ts does, drives it with ghz, stops it, and summarises the
// profile: self time by package or file, the most expensive functions, and
// the inclusive time of the steps of the platform's pipeline.
// `node bench/profile.ts <file.cpuprofile>` summarises an existing profile.
// Not part of the tests. Bounded: one warm-up and one measured ghz run.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema } from "../gen/mesh/testing/v1/echo_pb.js";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const SCRIPTS: Record<string, string> = {
  a: "bench/servers/grpc-js.ts",
  b: "bench/servers/connect-node.ts",
  c: "bench/servers/platform.ts",
  d: "bench/servers/platform-transport.ts",
};
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 40_000);
const TOP = Number(process.env.PROFILE_TOP ?? 40);

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where code lives: a package, a node: built-in area, a repository file, or a V8 pseudo-frame. */
function area(frame: CallFrame): string {
  const url = frame.url;
  if (url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  if (url.startsWith("node:")) {
    const m = /^node:internal\/(?:[^/]+\/)*?([^/]+?)(?:\.js)?$/.exec(url);
    const p = url.replace(/^node:internal\//, "").replace(/\.js$/, "");
    if (p.startsWith("http2/")) return "node:http2";
    if (p.startsWith("streams/")) return "node:streams";
    if (p.startsWith("async_hooks") || p.startsWith("async_local_storage")) return "node:async_hooks/ALS";
    if (p.startsWith("process/task_queues") || p.startsWith("process/")) return "node:process";
    if (p.startsWith("timers")) return "node:timers";
    return m ? `node:${p.split("/")[0]}` : url;
  }
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const local = url.replace(/^file:\/\//, "");
  return local.startsWith(repoRoot) ? local.slice(repoRoot.length) : local;
}

function frameKey(frame: CallFrame): string {
  const where = frame.url === "" ? "" : ` ${area(frame)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || "(anonymous)"}${where}`;
}

function summarise(file: string): void {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfByArea = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclusiveByFn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let startup = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const leaf = byId.get(profile.samples[i])!;
    if (leaf.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    // Loading modules is start-up, not the calls: left out.
    let loading = false;
    for (let id: number | undefined = leaf.id; id !== undefined && !loading; id = parent.get(id)) {
      loading = byId.get(id)!.callFrame.url.startsWith("node:internal/modules/");
    }
    if (loading) {
      startup += dt;
      continue;
    }
    total += dt;
    const a = area(leaf.callFrame);
    selfByArea.set(a, (selfByArea.get(a) ?? 0) + dt);
    const k = frameKey(leaf.callFrame);
    selfByFn.set(k, (selfByFn.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const key = frameKey(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusiveByFn.set(key, (inclusiveByFn.get(key) ?? 0) + dt);
    }
  }
  const pct = (v: number) => `${((v / total) * 100).toFixed(1).padStart(5)}%`;
  const ms = (v: number) => `${(v / 1000).toFixed(0).padStart(6)} ms`;
  const top = (m: Map<string, number>, n: number) => [...m.entries()].sort((x, y) => y[1] - x[1]).slice(0, n);

  console.log(`profile ${file}`);
  console.log(`busy ${ms(total)} (module loading, left out: ${ms(startup)}), idle ${ms(idle)}\n`);
  console.log("self time by package / file:");
  for (const [k, v] of top(selfByArea, 30)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
  console.log(`\ntop ${TOP} functions by self time:`);
  for (const [k, v] of top(selfByFn, TOP)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
  console.log(`\ntop ${TOP} functions by inclusive time (repository code and packages):`);
  for (const [k, v] of top(new Map([...inclusiveByFn].filter(([k]) => !/^\(|^(processTicksAndRejections|runMicrotasks|emit|listOnTimeout|processTimers) /.test(k))), TOP)) {
    console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
  }
}

async function profileServer(key: string): Promise<string> {
  const script = SCRIPTS[key];
  if (!script) throw new Error(`unknown server ${key}: use a, b, c or d`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shop-profile-"));
  const protoset = path.join(dir, "echo.binpb");
  const request = path.join(dir, "echo-request.bin");
  const built = spawnSync("buf", ["build", "-o", protoset, "--path", "proto/mesh/testing/v1/echo.proto"], { cwd: repoRoot, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`buf build failed: ${built.stderr}`);
  fs.writeFileSync(request, toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "hello" })));
  const pinned = os.availableParallelism() >= 2 && spawnSync("taskset", ["--version"], { stdio: "ignore" }).status === 0;
  const pin = (core: string, cmd: string, args: string[]): [string, string[]] => (pinned ? ["taskset", ["-c", core, cmd, ...args]] : [cmd, args]);

  const [cmd, args] = pin("1", process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, script]);
  const logFd = fs.openSync(path.join(dir, "server.log"), "w");
  const server = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, PORT: "0", LOG_LEVEL: "info", SHOP_DEV_KEYS: "1" }, stdio: ["ignore", logFd, "pipe"] });
  fs.closeSync(logFd);
  const kill = () => server.exitCode === null && server.signalCode === null && server.kill("SIGKILL");
  process.on("exit", kill);
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("server did not start within 20 s")), 20_000);
      createInterface({ input: server.stderr! }).on("line", (line) => {
        const m = /^bench-server listening (\d+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      void exited.then(() => reject(new Error("server exited before listening")));
    });
    for (const n of [10_000, REQUESTS]) {
      const [g, gargs] = pin("0", "ghz", [
        "--insecure", "--protoset", protoset, "--call", "mesh.testing.v1.EchoService/Echo", "-B", request,
        "--connections", "10", "-c", "100", "-n", String(n), "-t", "10s", "-O", "json", ...(pinned ? ["--cpus", "1"] : []), `127.0.0.1:${port}`,
      ]);
      const r = spawnSync(g, gargs, { encoding: "utf8", timeout: 30_000 + n * 2, maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`ghz failed: ${r.error?.message ?? r.stderr}`);
      const report = JSON.parse(r.stdout) as { count: number; rps: number; statusCodeDistribution?: Record<string, number> };
      if ((report.statusCodeDistribution?.OK ?? 0) !== n) throw new Error(`ghz reports failures: ${JSON.stringify(report.statusCodeDistribution)}`);
      console.log(`ghz ${n} calls: ${Math.round(report.rps)} req/s`);
    }
    server.kill("SIGTERM");
    const timer = setTimeout(kill, 15_000);
    await exited;
    clearTimeout(timer);
  } finally {
    kill();
  }
  fs.rmSync(path.join(dir, "server.log"), { force: true });
  const file = fs.readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no profile written in ${dir}`);
  return path.join(dir, file);
}

const arg = process.argv[2] ?? "c";
const file = arg.endsWith(".cpuprofile") ? arg : await profileServer(arg);
summarise(file);
if (!arg.endsWith(".cpuprofile")) console.log(`\n(profile kept at ${file}; open it in Chrome DevTools > Performance)`);
process.exit(0);
