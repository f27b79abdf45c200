// `make bench`: the same Echo handler served by
//   (a) a bare @grpc/grpc-js server with the protobuf-es codec,
//   (b) a default connect-node server,
//   (c) this platform with every interceptor on,
// each driven by one load generator (ghz) with the same settings, the trio
// repeated and interleaved so the noise shows. Prints req/s, p50, p99 and the
// server's CPU time per call for each, the medians, and the ratios c/a and b/a.
// Not part of the tests. See BENCHMARKS.md.
//
// Each server runs as its own process pinned to core 1, ghz to core 0
// (taskset, when the machine has two cores or more). Every server process
// is fresh: started, checked with one real call, warmed up, measured, stopped.
//
// Knobs (environment): BENCH_ROUNDS (3), BENCH_REQUESTS (60000),
// BENCH_WARMUP (10000), BENCH_CONNECTIONS (10), BENCH_CONCURRENCY (100),
// BENCH_ONLY (comma list of a,b,c; d adds the platform's gRPC path without
// its pipeline, a diagnostic), BENCH_JSON (write the results there).
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoService } from "../gen/mesh/testing/v1/echo_pb.js";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

const ROUNDS = intEnv("BENCH_ROUNDS", 3, 1, 10);
const REQUESTS = intEnv("BENCH_REQUESTS", 60_000, 1_000, 1_000_000);
const WARMUP = intEnv("BENCH_WARMUP", 10_000, 0, 1_000_000);
const CONNECTIONS = intEnv("BENCH_CONNECTIONS", 10, 1, 1_000);
const CONCURRENCY = intEnv("BENCH_CONCURRENCY", 100, 1, 10_000);
const CALL = "mesh.testing.v1.EchoService/Echo";
const MESSAGE = "hello";
/** ghz sends this, already serialized (-B): JSON (-d) costs the one-core load generator ~7% of its rate. */
const REQUEST_BYTES = toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: MESSAGE }));
/** Whole run, whatever happens. */
const TOTAL_BUDGET_MS = 30 * 60_000;
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
/** A ghz run gets this long: generous even at 500 calls/s. */
const ghzTimeoutMs = (n: number) => 30_000 + n * 2;

interface ServerSpec {
  readonly key: "a" | "b" | "c" | "d";
  readonly name: string;
  readonly label: string;
  readonly script: string;
  /** The platform logs every call: its log lines are counted after the run. */
  readonly logs: boolean;
}

const SERVERS: readonly ServerSpec[] = [
  { key: "a", name: "grpc-js", label: "(a) bare @grpc/grpc-js, protobuf-es codec", script: "bench/servers/grpc-js.ts", logs: false },
  { key: "b", name: "connect-node", label: "(b) default connect-node server", script: "bench/servers/connect-node.ts", logs: false },
  { key: "c", name: "platform", label: "(c) platform, every interceptor on", script: "bench/servers/platform.ts", logs: true },
  // Diagnostic, only when BENCH_ONLY names it: the lean path without the pipeline.
  { key: "d", name: "platform-transport", label: "(d) platform gRPC path, no interceptors", script: "bench/servers/platform-transport.ts", logs: false },
];

interface Measurement {
  readonly server: ServerSpec["key"];
  readonly round: number;
  readonly count: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly avgMs: number;
  /** Server process CPU time (user + system, all threads) per call, in microseconds. */
  readonly cpuUsPerCall: number;
  /** Server process CPU time over wall time of the measured run: 100% is one core. */
  readonly cpuPercent: number;
  /** Busy share of the server's core and of ghz's core over the measured run (pinned runs only). */
  readonly serverCoreBusy?: number;
  readonly ghzCoreBusy?: number;
  readonly logLines?: number;
}

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>();
/** Removed on every way out. */
let workDir: string | undefined;

function removeWorkDir(): void {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function killAll(signal: NodeJS.Signals): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

process.on("exit", () => {
  killAll("SIGKILL");
  removeWorkDir();
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping the servers\n`);
    killAll("SIGKILL");
    process.exit(130);
  });
}

const pinning = (() => {
  const cores = os.availableParallelism();
  const taskset = spawnSync("taskset", ["--version"], { stdio: "ignore" }).status === 0;
  return cores >= 2 && taskset ? { server: ["taskset", "-c", "1"], ghz: ["taskset", "-c", "0"], cores } : { server: [], ghz: [], cores };
})();

function withPin(pin: string[], command: string, args: string[]): [string, string[]] {
  return pin.length === 0 ? [command, args] : [pin[0], [...pin.slice(1), command, ...args]];
}

interface RunningServer {
  readonly spec: ServerSpec;
  readonly child: ChildProcess;
  readonly port: number;
  readonly logFile: string;
  readonly exited: Promise<void>;
}

async function startServer(spec: ServerSpec, dir: string, round: number): Promise<RunningServer> {
  const logFile = path.join(dir, `${spec.name}-${round}.log`);
  const out = fs.openSync(logFile, "w");
  // Development keys: the servers listen on loopback only.
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", LOG_LEVEL: "info", SHOP_DEV_KEYS: "1" };
  const [command, args] = withPin(pinning.server, process.execPath, [spec.script]);
  const child = track(spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", out, "pipe"] }));
  fs.closeSync(out);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stderr: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.name} did not start within ${START_TIMEOUT_MS} ms:\n${stderr.join("\n")}`)), START_TIMEOUT_MS);
    createInterface({ input: child.stderr! }).on("line", (line) => {
      const m = /^bench-server listening (\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      } else if (stderr.length < 200) stderr.push(line);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited before listening:\n${stderr.join("\n")}`));
    });
  });
  return { spec, child, port, logFile, exited };
}

async function stopServer(server: RunningServer): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await server.exited;
  clearTimeout(timer);
}

const clockTicks = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User + system CPU seconds of a process (all its threads), from /proc. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields from "state" (3rd in proc(5)); utime is the 14th, stime the 15th.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
function coreTimes(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  for (const line of fs.readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out.set(m[1], { busy: total - v[3] - v[4], total });
  }
  return out;
}

function busyShare(before: ReturnType<typeof coreTimes>, after: ReturnType<typeof coreTimes>, cpu: string): number | undefined {
  const a = before.get(cpu);
  const b = after.get(cpu);
  if (!a || !b || b.total === a.total) return undefined;
  return ((b.busy - a.busy) / (b.total - a.total)) * 100;
}

// ---------------------------------------------------------------------- ghz

interface GhzReport {
  count: number;
  total: number;
  average: number;
  rps: number;
  errorDistribution?: Record<string, number> | null;
  statusCodeDistribution?: Record<string, number> | null;
  latencyDistribution?: Array<{ percentage: number; latency: number }> | null;
}

function ghzArgs(protoset: string, requestFile: string, target: string, n: number): string[] {
  return [
    "--insecure",
    "--protoset", protoset,
    "--call", CALL,
    "-B", requestFile,
    "--connections", String(CONNECTIONS),
    "-c", String(CONCURRENCY),
    "-n", String(n),
    "-t", "10s",
    "-O", "json",
    ...(pinning.ghz.length > 0 ? ["--cpus", "1"] : []),
    target,
  ];
}

function runGhz(files: BenchFiles, port: number, n: number): Promise<GhzReport> {
  const [command, args] = withPin(pinning.ghz, "ghz", ghzArgs(files.protoset, files.request, `127.0.0.1:${port}`, n));
  const timeoutMs = ghzTimeoutMs(n);
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] }));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString().trim();
      if (timedOut) return reject(new Error(`ghz did not finish ${n} calls within ${timeoutMs} ms`));
      if (code !== 0) return reject(new Error(`ghz exited with ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString()) as GhzReport);
      } catch (e) {
        reject(new Error(`cannot parse ghz output (${String(e)}); stderr: ${stderr}`));
      }
    });
  });
}

/** Throws unless every one of the n calls answered OK. */
function assertClean(report: GhzReport, n: number, what: string): void {
  const errors = Object.entries(report.errorDistribution ?? {});
  const statuses = Object.entries(report.statusCodeDistribution ?? {});
  const ok = report.statusCodeDistribution?.OK ?? 0;
  if (errors.length > 0 || statuses.some(([code]) => code !== "OK") || report.count !== n || ok !== n) {
    throw new Error(
      `${what}: ghz reports failures: count ${report.count} of ${n}, OK ${ok}, ` +
        `statuses ${JSON.stringify(report.statusCodeDistribution)}, errors ${JSON.stringify(report.errorDistribution)}`,
    );
  }
}

function percentileMs(report: GhzReport, p: number): number {
  const entry = report.latencyDistribution?.find((d) => d.percentage === p);
  if (!entry) throw new Error(`ghz report has no p${p}`);
  return entry.latency / 1e6;
}

// ---------------------------------------------------------------- one server

/** One real call through a gRPC client: the handler answers, and on the platform the pipeline ran. */
async function sanityCheck(server: RunningServer): Promise<void> {
  const client = createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}`, idleConnectionTimeoutMs: 1 }));
  const res = await client.echo({ message: "hello" }, { timeoutMs: 5_000 });
  if (res.message !== "hello" || res.instance !== "bench") {
    throw new Error(`${server.spec.name}: unexpected Echo response ${JSON.stringify({ message: res.message, instance: res.instance })}`);
  }
  if (server.spec.key === "c" && (res.traceId === "" || res.budgetMs <= 0n)) {
    throw new Error(`platform: Echo ran without its pipeline (trace id "${res.traceId}", budget ${res.budgetMs} ms)`);
  }
}

function countLogLines(file: string): number {
  const text = fs.readFileSync(file, "utf8");
  let n = 0;
  for (const line of text.split("\n")) {
    if (line.includes('"msg":"rpc"') && line.includes('"method":"Echo"')) n++;
  }
  return n;
}

interface BenchFiles {
  readonly dir: string;
  readonly protoset: string;
  readonly request: string;
}

async function measure(spec: ServerSpec, round: number, files: BenchFiles): Promise<Measurement> {
  const server = await startServer(spec, files.dir, round);
  try {
    await sanityCheck(server);
    if (WARMUP > 0) assertClean(await runGhz(files, server.port, WARMUP), WARMUP, `${spec.name} warm-up`);
    const pid = server.child.pid!;
    const cpuBefore = cpuSeconds(pid);
    const coresBefore = coreTimes();
    const wallBefore = performance.now();
    const report = await runGhz(files, server.port, REQUESTS);
    const wallSeconds = (performance.now() - wallBefore) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;
    const coresAfter = coreTimes();
    assertClean(report, REQUESTS, spec.name);
    await stopServer(server);
    let logLines: number | undefined;
    if (spec.logs) {
      logLines = countLogLines(server.logFile);
      const expected = 1 + WARMUP + REQUESTS;
      if (logLines < expected) throw new Error(`platform logged ${logLines} Echo calls, expected ${expected}: logging is not on`);
    }
    return {
      server: spec.key,
      round,
      count: report.count,
      rps: report.rps,
      p50Ms: percentileMs(report, 50),
      p99Ms: percentileMs(report, 99),
      avgMs: report.average / 1e6,
      cpuUsPerCall: (cpu / report.count) * 1e6,
      cpuPercent: (cpu / wallSeconds) * 100,
      serverCoreBusy: pinning.server.length > 0 ? busyShare(coresBefore, coresAfter, "cpu1") : undefined,
      ghzCoreBusy: pinning.ghz.length > 0 ? busyShare(coresBefore, coresAfter, "cpu0") : undefined,
      logLines,
    };
  } finally {
    await stopServer(server);
    fs.rmSync(server.logFile, { force: true });
  }
}

// ------------------------------------------------------------------- output

function median(values: number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const fmt = {
  rps: (v: number) => Math.round(v).toLocaleString("en-US"),
  ms: (v: number) => v.toFixed(2),
  us: (v: number) => v.toFixed(0),
  pct: (v: number) => `${v.toFixed(0)}%`,
  ratio: (v: number) => v.toFixed(2),
};

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |";
  const rule = "|" + widths.map((w, i) => (i === 0 ? ":" : "-") + "-".repeat(w) + (i === 0 ? "-" : ":")).join("|") + "|";
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

function log(text = ""): void {
  process.stdout.write(text + "\n");
}

// --------------------------------------------------------------------- main

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${raw}`);
  return n;
}

function toolVersion(command: string, args: string[], hint: string): string {
  const r = spawnSync(command, args, { cwd: repoRoot, encoding: "utf8" });
  if (r.error || r.status !== 0) throw new Error(`${command} is not usable (${r.error?.message ?? r.stderr.trim()}): ${hint}`);
  return r.stdout.trim();
}

/** `go install` builds print "dev" for --version; the module version is in the binary. */
function ghzModuleVersion(printed: string): string {
  if (printed !== "" && printed !== "dev") return printed;
  const which = spawnSync("sh", ["-c", "command -v ghz"], { encoding: "utf8" }).stdout?.trim();
  const info = which ? spawnSync("go", ["version", "-m", which], { encoding: "utf8" }) : undefined;
  const m = info?.stdout ? /^\s*mod\s+github\.com\/bojand\/ghz\s+(\S+)/m.exec(info.stdout) : null;
  return m ? m[1] : printed || "unknown";
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    process.stderr.write(`bench: still running after ${TOTAL_BUDGET_MS / 60_000} minutes, giving up\n`);
    killAll("SIGKILL");
    process.exit(1);
  }, TOTAL_BUDGET_MS);
  deadline.unref();

  const nodeMajor = Number(process.versions.node.split(".")[0]);
  if (nodeMajor < 24) throw new Error(`Node ${process.version}: run with Node 24 (make bench puts node_modules/.bin first on PATH)`);
  const ghzVersion = ghzModuleVersion(
    toolVersion("ghz", ["--version"], "run `make bench`, or `GOBIN=$PWD/tools/bin go install github.com/bojand/ghz/cmd/ghz@v0.93.0` and put tools/bin on PATH"),
  );
  toolVersion("buf", ["--version"], "run `npm ci` and put node_modules/.bin on PATH");

  const only = (process.env.BENCH_ONLY ?? "a,b,c").split(",").map((s) => s.trim());
  const servers = SERVERS.filter((s) => only.includes(s.key));
  if (servers.length === 0) throw new Error("BENCH_ONLY selects no server (use a,b,c,d)");

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shop-bench-"));
  workDir = dir;
  try {
    const files: BenchFiles = { dir, protoset: path.join(dir, "echo.binpb"), request: path.join(dir, "echo-request.bin") };
    const built = spawnSync("buf", ["build", "-o", files.protoset, "--path", "proto/mesh/testing/v1/echo.proto"], { cwd: repoRoot, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`buf build failed: ${built.stderr}`);
    fs.writeFileSync(files.request, REQUEST_BYTES);

    const cpuModel = os.cpus()[0]?.model ?? "unknown CPU";
    log(`Benchmark: unary ${CALL} with {message: "${MESSAGE}"} (${REQUEST_BYTES.length} bytes)`);
    log(`Machine: ${pinning.cores} cores (${cpuModel}), ${os.type()} ${os.release()}, Node ${process.version}, ghz ${ghzVersion}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    log(
      pinning.server.length > 0
        ? "Pinning: each server on core 1 (taskset -c 1), ghz on core 0 (taskset -c 0 --cpus 1)"
        : "Pinning: none (needs taskset and two cores): figures are not comparable with pinned runs",
    );
    log(`Load: ${ROUNDS} round(s), order rotated each round; per server a fresh process, one checked call, a ${WARMUP}-call warm-up, then:`);
    log(`  ${[...pinning.ghz, "ghz", ...ghzArgs("echo.binpb", "echo-request.bin", "127.0.0.1:PORT", REQUESTS)].map((a) => (/^[\w./:=-]+$/.test(a) ? a : `'${a}'`)).join(" ")}`);
    log();

    const results: Measurement[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const shift = (round - 1) % servers.length;
      const order = [...servers.slice(shift), ...servers.slice(0, shift)];
      for (const spec of order) {
        const m = await measure(spec, round, files);
        results.push(m);
        log(
          `round ${round} ${spec.label.padEnd(42)} ${fmt.rps(m.rps).padStart(7)} req/s  p50 ${fmt.ms(m.p50Ms).padStart(6)} ms  ` +
            `p99 ${fmt.ms(m.p99Ms).padStart(7)} ms  server CPU ${fmt.us(m.cpuUsPerCall).padStart(4)} µs/call (${fmt.pct(m.cpuPercent)} of a core)` +
            (m.serverCoreBusy === undefined ? "" : `  cores busy: server's ${fmt.pct(m.serverCoreBusy)}, ghz's ${fmt.pct(m.ghzCoreBusy ?? 0)}`) +
            (m.logLines === undefined ? "" : `  ${m.logLines} log lines`),
        );
      }
    }

    const byServer = new Map(servers.map((s) => [s.key, results.filter((r) => r.server === s.key)]));
    const med = (key: ServerSpec["key"], f: (m: Measurement) => number) => median((byServer.get(key) ?? []).map(f));
    log();
    log(`Medians of ${ROUNDS} round(s), ${REQUESTS} calls each:`);
    log();
    log(
      table(
        ["server", "req/s", "p50 ms", "p99 ms", "server CPU µs/call", "rounds req/s"],
        servers.map((s) => [
          s.label,
          fmt.rps(med(s.key, (m) => m.rps)),
          fmt.ms(med(s.key, (m) => m.p50Ms)),
          fmt.ms(med(s.key, (m) => m.p99Ms)),
          fmt.us(med(s.key, (m) => m.cpuUsPerCall)),
          byServer.get(s.key)!.map((m) => fmt.rps(m.rps)).join(" / "),
        ]),
      ),
    );
    log();
    const has = (k: ServerSpec["key"]) => byServer.has(k);
    const ratios: Record<string, number> = {};
    if (has("a") && has("c")) ratios["c/a"] = med("c", (m) => m.rps) / med("a", (m) => m.rps);
    if (has("a") && has("b")) ratios["b/a"] = med("b", (m) => m.rps) / med("a", (m) => m.rps);
    if (has("a") && has("d")) ratios["d/a"] = med("d", (m) => m.rps) / med("a", (m) => m.rps);
    if (has("c") && has("d")) ratios["c/d"] = med("c", (m) => m.rps) / med("d", (m) => m.rps);
    for (const [name, value] of Object.entries(ratios)) {
      const [x, y] = name.split("/") as Array<ServerSpec["key"]>;
      const perRound = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const rx = results.find((r) => r.server === x && r.round === round)!;
        const ry = results.find((r) => r.server === y && r.round === round)!;
        perRound.push(fmt.ratio(rx.rps / ry.rps));
      }
      const cpu = med(y, (m) => m.cpuUsPerCall) / med(x, (m) => m.cpuUsPerCall);
      log(`${name} req/s: ${fmt.ratio(value)} (per round ${perRound.join(", ")}); by server CPU per call: ${fmt.ratio(cpu)}`);
    }
    // On a quiet machine the server's core does little besides the server.
    const shared = results.map((m) => (m.serverCoreBusy ?? 0) - m.cpuPercent);
    if (pinning.server.length > 0 && median(shared) > 10) {
      log(
        `Warning: other processes took a median ${fmt.pct(median(shared))} of the server's core during the measured runs ` +
          "(core busy minus the server's own CPU): req/s and latencies are noisy; server CPU per call is the steadier figure.",
      );
    }
    if (ratios["c/a"] !== undefined) {
      log(ratios["c/a"] >= 0.8 ? "Target c/a >= 0.80 for unary calls: met." : `Target c/a >= 0.80 for unary calls: NOT met (${fmt.ratio(ratios["c/a"])}).`);
    }
    if (process.env.BENCH_JSON) {
      fs.writeFileSync(
        process.env.BENCH_JSON,
        JSON.stringify({ node: process.version, cores: pinning.cores, cpu: cpuModel, ghz: ghzVersion, requests: REQUESTS, warmup: WARMUP, connections: CONNECTIONS, concurrency: CONCURRENCY, ratios, results }, null, 2) + "\n",
      );
    }
  } finally {
    killAll("SIGKILL");
    removeWorkDir();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
    killAll("SIGKILL");
    process.exit(1);
  },
);
