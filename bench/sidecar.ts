// `node bench/sidecar.ts`: the latency one sidecar pair adds, at a fixed rate.
//
// One EchoService replica (test/fixtures/echo-server.ts, logging every call as
// in production) behind its sidecar's inbound listener, and a caller's sidecar
// whose outbound listener routes to it: the drill mesh of test/mesh-drills,
// built by the same generator as `make mesh`. ghz calls Echo at a fixed rate
// in short windows that alternate between
//   direct   ghz → the app
//   pair     ghz → caller's outbound sidecar → callee's inbound sidecar → the app
// so both see the same machine at nearly the same time. Every call of every
// window is kept (ghz's per-call details) and the percentiles are taken over
// all the calls of each path. Meanwhile the CPU time (utime + stime, all
// threads, /proc/<pid>/stat) and resident memory (VmRSS, /proc/<pid>/status)
// of both Envoys are read: the CPU over the pair windows only, the idle CPU
// (health checks) over the direct ones.
//
// Prints the table and writes it into the "Sidecar" section of BENCHMARKS.md
// (BENCH_WRITE=0 leaves the file alone). Not a test. Bounded: every ghz run
// and the whole run have deadlines, and every process is stopped on the way
// out.
//
// Knobs: BENCH_RPS (1000), BENCH_WINDOW_S (3), BENCH_WINDOWS (5 per path),
// BENCH_WARMUP_S (2 per path), BENCH_WRITE (1).
//
// `node bench/sidecar.ts --mtls`: the same pair with and without mTLS, in
// one run. Two drill meshes side by side, one cleartext and one with the
// mesh's mTLS and RBAC (envoy/mtls.ts, as `make mesh` generates them), each
// with its own app; at each of BENCH_MTLS_RATES (1000,2000) calls/s the four
// paths (each mesh's app directly, each mesh's pair) take turns in windows,
// so all see the same machine. Per mesh and rate: the p50 and p99 the pair
// adds over its own app called directly, and the CPU of both Envoys per
// call. Writes the "Sidecar pair with and without mTLS" section of
// BENCHMARKS.md (BENCH_WRITE=0 leaves it alone).
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema } from "../gen/mesh/testing/v1/echo_pb.js";
import { startDrillMesh } from "../test/mesh-drills/drill-mesh.ts";
import type { DrillMesh } from "../test/mesh-drills/drill-mesh.ts";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const RPS = intEnv("BENCH_RPS", 1000, 10, 20_000);
const WINDOW_S = intEnv("BENCH_WINDOW_S", 3, 1, 60);
const WINDOWS = intEnv("BENCH_WINDOWS", 5, 1, 50);
const WARMUP_S = intEnv("BENCH_WARMUP_S", 2, 0, 60);
const WRITE = process.env.BENCH_WRITE !== "0";
const CALL = "mesh.testing.v1.EchoService/Echo";
const MESSAGE = "hello";
/** Enough ghz workers that 1,000 calls/s never wait for a free one (an open loop in effect). */
const WORKERS = 50;
const TOTAL_BUDGET_MS = 10 * 60_000;
const COMMAND = "node bench/sidecar.ts";
const MTLS_RATES = (process.env.BENCH_MTLS_RATES ?? "1000,2000").split(",").map((r) => {
  const n = Number(r.trim());
  if (!Number.isInteger(n) || n < 10 || n > 20_000) throw new Error(`BENCH_MTLS_RATES: ${r} is not a rate in [10, 20000]`);
  return n;
});
const TARGET_P99_MS = 1;

type PathName = "direct" | "pair";

interface GhzReport {
  count: number;
  rps: number;
  details?: Array<{ latency: number; error: string; status: string }> | null;
  statusCodeDistribution?: Record<string, number> | null;
  errorDistribution?: Record<string, number> | null;
}

interface Window {
  readonly path: PathName;
  /** Every call's latency, ms. */
  readonly latenciesMs: number[];
  readonly rps: number;
  /** CPU seconds each Envoy, and the app, used during the window, and its length in seconds. */
  readonly cpu: { caller: number; callee: number; app: number };
  readonly seconds: number;
}

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${raw}`);
  return n;
}

const clockTicks = (() => {
  const n = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User + system CPU seconds of a process, all its threads. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** Resident memory of a process, MiB. */
function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

function ghzArgs(protoset: string, request: string, target: string, seconds: number, rps = RPS): string[] {
  return [
    "--insecure",
    "--protoset", protoset,
    "--call", CALL,
    "-B", request,
    "--rps", String(rps),
    "-n", String(rps * seconds),
    "--connections", "1",
    "-c", String(WORKERS),
    "-t", "5s",
    "-O", "json",
    target,
  ];
}

function runGhz(args: string[], seconds: number): Promise<GhzReport> {
  const timeoutMs = seconds * 1000 * 3 + 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn("ghz", args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`ghz: ${e.message} (is tools/bin on PATH? \`make tools/bin/ghz\`)`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString().trim();
      if (signal) return reject(new Error(`ghz did not finish within ${timeoutMs} ms`));
      if (code !== 0) return reject(new Error(`ghz exited with ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString()) as GhzReport);
      } catch (e) {
        reject(new Error(`cannot parse ghz output (${String(e)}): ${stderr}`));
      }
    });
  });
}

/** Latencies of every call in ms; throws unless every call answered OK. */
function latencies(report: GhzReport, expected: number, what: string): number[] {
  const details = report.details ?? [];
  const bad = details.filter((d) => d.status !== "OK" || d.error);
  if (details.length !== expected || bad.length > 0) {
    throw new Error(
      `${what}: ${details.length} of ${expected} calls reported, ${bad.length} not OK: ` +
        `statuses ${JSON.stringify(report.statusCodeDistribution)}, errors ${JSON.stringify(report.errorDistribution)}`,
    );
  }
  return details.map((d) => d.latency / 1e6);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const ms = (v: number) => v.toFixed(2);

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |";
  const rule = "|" + widths.map((w, i) => (i === 0 ? ":" : "-") + "-".repeat(w) + (i === 0 ? "-" : ":")).join("|") + "|";
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

function envoyVersion(): string {
  const found = spawnSync(process.execPath, ["-e", 'import("./envoy/find-envoy.ts").then((m) => console.log(m.findEnvoy()))'], { cwd: repoRoot, encoding: "utf8" });
  const bin = found.stdout.trim();
  const v = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout ?? "";
  return /version: \S+?\/([\d.]+)\//.exec(v)?.[1] ?? "unknown";
}

/** Replaces the "## Sidecar" section of BENCHMARKS.md (to the next "## " or the end), or appends one. */
function writeSection(section: string, heading = "## Sidecar"): void {
  const file = path.join(repoRoot, "BENCHMARKS.md");
  const text = fs.readFileSync(file, "utf8");
  const start = text.search(new RegExp(`^${heading.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  if (start < 0) {
    fs.writeFileSync(file, `${text.trimEnd()}\n\n${section}\n`);
    return;
  }
  const rest = text.slice(start + 1);
  const next = rest.search(/^## /m);
  const end = next < 0 ? text.length : start + 1 + next;
  fs.writeFileSync(file, `${text.slice(0, start)}${section}\n${next < 0 ? "" : `\n${text.slice(end)}`}`);
}


/** The Echo protoset and one binary EchoRequest in dir, for ghz. */
function echoRequestFiles(dir: string): { protoset: string; request: string } {
  const protoset = path.join(dir, "echo.binpb");
  const request = path.join(dir, "echo-request.bin");
  const built = spawnSync("buf", ["build", "-o", protoset, "--path", "proto/mesh/testing/v1/echo.proto"], { cwd: repoRoot, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`buf build failed (node_modules/.bin on PATH?): ${built.stderr}`);
  fs.writeFileSync(request, toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: MESSAGE })));
  return { protoset, request };
}

async function main(): Promise<void> {
  const budget = setTimeout(() => {
    process.stderr.write(`bench/sidecar.ts: still running after ${TOTAL_BUDGET_MS / 60_000} minutes, giving up\n`);
    process.exit(1);
  }, TOTAL_BUDGET_MS);
  budget.unref();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shop-bench-sidecar-"));
  let mesh: DrillMesh | undefined;
  try {
    const { protoset, request } = echoRequestFiles(dir);

    mesh = await startDrillMesh({ replicas: 1, appLogLevel: "info" });
    const replica = mesh.replicas[0];
    const targets: Record<PathName, string> = {
      direct: `127.0.0.1:${replica.ports.app}`,
      pair: mesh.callerUrl.replace("http://", ""),
    };
    const pids = { caller: mesh.caller.pid, callee: replica.sidecar.pid, app: replica.app.pid };
    const load = os.loadavg();
    log(`Sidecar pair latency: ${CALL} at ${RPS} calls/s, ${WINDOWS} × ${WINDOW_S} s windows per path, alternating, after ${WARMUP_S} s of warm-up each`);
    log(`Machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), ${os.type()} ${os.release()}, Node ${process.version}, Envoy ${envoyVersion()}, load average ${load.map((l) => l.toFixed(2)).join(" ")}`);
    log(`ghz per window: ghz ${ghzArgs("echo.binpb", "echo-request.bin", "<target>", WINDOW_S).join(" ")}`);
    log();

    if (WARMUP_S > 0) {
      for (const p of ["direct", "pair"] as const) latencies(await runGhz(ghzArgs(protoset, request, targets[p], WARMUP_S), WARMUP_S), RPS * WARMUP_S, `${p} warm-up`);
    }
    const windows: Window[] = [];
    let rssPeak = { caller: 0, callee: 0, app: 0 };
    for (let w = 0; w < WINDOWS; w++) {
      // Alternate which path goes first, so neither always follows the other.
      const order: PathName[] = w % 2 === 0 ? ["direct", "pair"] : ["pair", "direct"];
      for (const p of order) {
        const cpu0 = { caller: cpuSeconds(pids.caller), callee: cpuSeconds(pids.callee), app: cpuSeconds(pids.app) };
        const t0 = performance.now();
        const report = await runGhz(ghzArgs(protoset, request, targets[p], WINDOW_S), WINDOW_S);
        const seconds = (performance.now() - t0) / 1000;
        const cpu = { caller: cpuSeconds(pids.caller) - cpu0.caller, callee: cpuSeconds(pids.callee) - cpu0.callee, app: cpuSeconds(pids.app) - cpu0.app };
        rssPeak = { caller: Math.max(rssPeak.caller, rssMiB(pids.caller)), callee: Math.max(rssPeak.callee, rssMiB(pids.callee)), app: Math.max(rssPeak.app, rssMiB(pids.app)) };
        const lat = latencies(report, RPS * WINDOW_S, `${p} window ${w + 1}`);
        windows.push({ path: p, latenciesMs: lat, rps: report.rps, cpu, seconds });
        const sorted = [...lat].sort((a, b) => a - b);
        log(`window ${w + 1} ${p.padEnd(6)} ${report.rps.toFixed(0).padStart(5)} calls/s  p50 ${ms(percentile(sorted, 50))} ms  p99 ${ms(percentile(sorted, 99))} ms`);
      }
    }

    const of = (p: PathName) => windows.filter((w) => w.path === p);
    const sortedOf = (p: PathName) => of(p).flatMap((w) => w.latenciesMs).sort((a, b) => a - b);
    const direct = sortedOf("direct");
    const pair = sortedOf("pair");
    const rpsOf = (p: PathName) => of(p).reduce((s, w) => s + w.latenciesMs.length, 0) / of(p).reduce((s, w) => s + w.seconds, 0);
    const cpuPercent = (p: PathName, which: keyof Window["cpu"]) => (of(p).reduce((s, w) => s + w.cpu[which], 0) / of(p).reduce((s, w) => s + w.seconds, 0)) * 100;
    /** CPU per call, µs: a process's CPU share at the measured rate, per call. */
    const perCall = (p: PathName, which: keyof Window["cpu"]) => (cpuPercent(p, which) / 100 / rpsOf(p)) * 1e6;
    const stats = { p50: [percentile(direct, 50), percentile(pair, 50)], p90: [percentile(direct, 90), percentile(pair, 90)], p99: [percentile(direct, 99), percentile(pair, 99)] };
    const added = { p50: stats.p50[1] - stats.p50[0], p99: stats.p99[1] - stats.p99[0] };
    const met = added.p99 <= TARGET_P99_MS;
    const busy = cpuPercent("pair", "caller") + cpuPercent("pair", "callee") + cpuPercent("pair", "app");

    const latencyTable = table(
      ["path", "calls", "calls/s", "p50 ms", "p90 ms", "p99 ms"],
      [
        ["direct: ghz → app", String(direct.length), rpsOf("direct").toFixed(0), ms(stats.p50[0]), ms(stats.p90[0]), ms(stats.p99[0])],
        ["pair: ghz → outbound sidecar → inbound sidecar → app", String(pair.length), rpsOf("pair").toFixed(0), ms(stats.p50[1]), ms(stats.p90[1]), ms(stats.p99[1])],
        ["**added by the pair**", "", "", `**${ms(added.p50)}**`, ms(stats.p90[1] - stats.p90[0]), `**${ms(added.p99)}**`],
      ],
    );
    const envoyTable = table(
      ["process", `CPU at ${RPS} calls/s`, "CPU per call", "CPU idle (health checks)", "RSS peak"],
      [
        ["Envoy: caller's sidecar (outbound listener)", `${cpuPercent("pair", "caller").toFixed(1)}% of a core`, `${perCall("pair", "caller").toFixed(0)} µs`, `${cpuPercent("direct", "caller").toFixed(1)}%`, `${rssPeak.caller.toFixed(0)} MiB`],
        ["Envoy: callee's sidecar (inbound listener)", `${cpuPercent("pair", "callee").toFixed(1)}% of a core`, `${perCall("pair", "callee").toFixed(0)} µs`, `${cpuPercent("direct", "callee").toFixed(1)}%`, `${rssPeak.callee.toFixed(0)} MiB`],
        ["for scale: the app (Node, direct windows)", `${cpuPercent("direct", "app").toFixed(1)}% of a core`, `${perCall("direct", "app").toFixed(0)} µs`, "", `${rssPeak.app.toFixed(0)} MiB`],
      ],
    );
    log();
    log(latencyTable);
    log();
    log(envoyTable);
    log();
    log(`Target: a pair adds at most ${TARGET_P99_MS} ms at p99: ${met ? "met" : "NOT met"} (${ms(added.p99)} ms).`);

    if (WRITE) {
      const today = new Date().toISOString().slice(0, 16).replace("T", " ");
      writeSection(
        [
          "## Sidecar",
          "",
          "```sh",
          `${COMMAND}      # about ${Math.ceil((2 * WINDOWS * WINDOW_S + 2 * WARMUP_S + 5) / 10) * 10} s; BENCH_WRITE=0 leaves this file alone`,
          "```",
          "",
          "With `node_modules/.bin` (Node 24, buf) and `tools/bin` (ghz: `make tools/bin/ghz`) first on `PATH`, as",
          "`make` puts them, and Envoy from `make envoy`.",
          "",
          "What one sidecar pair adds to a call, at a fixed rate. `bench/sidecar.ts` starts one",
          "EchoService replica (`test/fixtures/echo-server.ts`, logging every call at `info` as in",
          "production) behind its sidecar's inbound listener, and a caller's sidecar whose outbound",
          "listener routes to it: the drill mesh of `test/mesh-drills/drill-mesh.ts`, its Envoy configs",
          "built by `envoy/sidecar.ts` as `make mesh`'s are, each Envoy with `--concurrency 1`. ghz calls",
          `Echo at ${RPS} calls/s (\`--rps ${RPS} --connections 1 -c ${WORKERS}\`) in ${WINDOW_S} s windows that alternate`,
          "between the app directly and the pair (outbound sidecar → inbound sidecar → app), so both",
          "paths see the same machine at nearly the same time; every call of every window is kept and",
          "the percentiles are over all of a path's calls. The Envoys' CPU is their utime + stime",
          "(`/proc/<pid>/stat`, all threads) over the pair windows, RSS is `VmRSS` (`/proc/<pid>/status`).",
          "",
          `Measured ${today} UTC. ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), Linux ${os.release()},`,
          `Node ${process.version}, Envoy ${envoyVersion()}, load average at the start ${load.map((l) => l.toFixed(2)).join(" ")}.`,
          `${WINDOWS} windows × ${WINDOW_S} s per path after ${WARMUP_S} s of warm-up each; every call answered OK:`,
          "",
          latencyTable,
          "",
          envoyTable,
          "",
          `**Target: a pair adds at most ${TARGET_P99_MS} ms at p99: ${met ? "met" : "not met"}** (${ms(added.p99)} ms at p99, ${ms(added.p50)} ms at p50).`,
          "",
          `During the pair windows the two Envoys and the app together kept ${busy.toFixed(0)}% of one core busy, on a machine of`,
          `${os.availableParallelism()} cores that ghz and whatever else runs there share (load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} at the end). Each call`,
          "through the pair needs three processes to get a core instead of one, and each Envoy's CPU per call is",
          "in the table: on a small machine shared with other work, the waiting adds up at every hop and shows",
          "most at p99. Figures from a busy machine overstate what a pair adds on an idle one.",
        ].join("\n"),
      );
      log(`BENCHMARKS.md: "Sidecar" section written`);
    }
  } finally {
    await mesh?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function log(text = ""): void {
  process.stdout.write(`${text}\n`);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  // process.exit runs the drill mesh's exit hook, which kills every process it started.
  process.on(signal, () => process.exit(130));
}

/** Where a path's calls go, and which processes' CPU counts for it. */
interface MtlsPath {
  readonly name: string;
  readonly mesh: "cleartext" | "mTLS";
  readonly kind: PathName;
  readonly target: string;
  readonly pids: { caller: number; callee: number; app: number };
}

async function compareMtls(): Promise<void> {
  const budget = setTimeout(() => {
    process.stderr.write(`bench/sidecar.ts --mtls: still running after ${TOTAL_BUDGET_MS / 60_000} minutes, giving up\n`);
    process.exit(1);
  }, TOTAL_BUDGET_MS);
  budget.unref();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shop-bench-mtls-"));
  const meshes: DrillMesh[] = [];
  try {
    const { protoset, request } = echoRequestFiles(dir);

    const plain = await startDrillMesh({ replicas: 1, appLogLevel: "info" });
    meshes.push(plain);
    const mtls = await startDrillMesh({ replicas: 1, appLogLevel: "info", mtls: true });
    meshes.push(mtls);
    const paths: MtlsPath[] = (
      [
        ["cleartext", plain],
        ["mTLS", mtls],
      ] as const
    ).flatMap(([name, mesh]) => {
      const replica = mesh.replicas[0];
      const pids = { caller: mesh.caller.pid, callee: replica.sidecar.pid, app: replica.app.pid };
      return [
        { name: `${name} direct`, mesh: name, kind: "direct" as const, target: `127.0.0.1:${replica.ports.app}`, pids },
        { name: `${name} pair`, mesh: name, kind: "pair" as const, target: mesh.callerUrl.replace("http://", ""), pids },
      ];
    });
    const load = os.loadavg();
    log(`Sidecar pair with and without mTLS: ${CALL} at ${MTLS_RATES.join(" and ")} calls/s, ${WINDOWS} × ${WINDOW_S} s windows per path and rate, in turns`);
    log(`Machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), ${os.type()} ${os.release()}, Node ${process.version}, Envoy ${envoyVersion()}, load average ${load.map((l) => l.toFixed(2)).join(" ")}`);
    log();

    interface Measured {
      readonly path: MtlsPath;
      readonly rps: number;
      readonly latenciesMs: number[];
      readonly seconds: number;
      readonly cpu: { caller: number; callee: number; app: number };
    }
    const measured: Measured[] = [];
    for (const rps of MTLS_RATES) {
      if (WARMUP_S > 0) for (const p of paths) latencies(await runGhz(ghzArgs(protoset, request, p.target, WARMUP_S, rps), WARMUP_S), rps * WARMUP_S, `${p.name} warm-up at ${rps}/s`);
      for (let w = 0; w < WINDOWS; w++) {
        // A different path first in each window, so none always follows another.
        const order = paths.map((_, i) => paths[(i + w) % paths.length]);
        for (const p of order) {
          const cpu0 = { caller: cpuSeconds(p.pids.caller), callee: cpuSeconds(p.pids.callee), app: cpuSeconds(p.pids.app) };
          const t0 = performance.now();
          const report = await runGhz(ghzArgs(protoset, request, p.target, WINDOW_S, rps), WINDOW_S);
          const seconds = (performance.now() - t0) / 1000;
          const cpu = { caller: cpuSeconds(p.pids.caller) - cpu0.caller, callee: cpuSeconds(p.pids.callee) - cpu0.callee, app: cpuSeconds(p.pids.app) - cpu0.app };
          const lat = latencies(report, rps * WINDOW_S, `${p.name} window ${w + 1} at ${rps}/s`);
          measured.push({ path: p, rps, latenciesMs: lat, seconds, cpu });
          const sorted = [...lat].sort((a, b) => a - b);
          log(`${String(rps).padStart(5)}/s window ${w + 1} ${p.name.padEnd(16)} ${report.rps.toFixed(0).padStart(5)} calls/s  p50 ${ms(percentile(sorted, 50))} ms  p99 ${ms(percentile(sorted, 99))} ms`);
        }
      }
    }

    const rows: string[][] = [];
    const figures: Record<string, { p50: number; p99: number; cpu: number }> = {};
    for (const rps of MTLS_RATES) {
      for (const mesh of ["cleartext", "mTLS"] as const) {
        const of = (kind: PathName) => measured.filter((m) => m.rps === rps && m.path.mesh === mesh && m.path.kind === kind);
        const sorted = (kind: PathName) => of(kind).flatMap((m) => m.latenciesMs).sort((a, b) => a - b);
        const direct = sorted("direct");
        const pair = sorted("pair");
        const calls = pair.length;
        const pairSeconds = of("pair").reduce((t, m) => t + m.seconds, 0);
        const envoyCpu = of("pair").reduce((t, m) => t + m.cpu.caller + m.cpu.callee, 0);
        const callerCpu = of("pair").reduce((t, m) => t + m.cpu.caller, 0);
        const calleeCpu = of("pair").reduce((t, m) => t + m.cpu.callee, 0);
        const added = { p50: percentile(pair, 50) - percentile(direct, 50), p99: percentile(pair, 99) - percentile(direct, 99) };
        const perCall = (envoyCpu / calls) * 1e6;
        figures[`${rps} ${mesh}`] = { ...added, cpu: perCall };
        rows.push([
          `${rps}`,
          mesh,
          String(calls),
          (calls / pairSeconds).toFixed(0),
          `${ms(percentile(direct, 50))} / ${ms(percentile(direct, 99))}`,
          `${ms(percentile(pair, 50))} / ${ms(percentile(pair, 99))}`,
          `**${ms(added.p50)}**`,
          `**${ms(added.p99)}**`,
          `**${perCall.toFixed(0)} µs**`,
          `${((callerCpu / calls) * 1e6).toFixed(0)} + ${((calleeCpu / calls) * 1e6).toFixed(0)} µs`,
        ]);
      }
    }
    const resultTable = table(
      ["calls/s", "sidecars", "calls", "pair calls/s", "direct p50 / p99 ms", "pair p50 / p99 ms", "added p50 ms", "added p99 ms", "pair CPU per call", "caller + callee"],
      rows,
    );
    const mtlsCost = MTLS_RATES.map((rps) => {
      const c = figures[`${rps} cleartext`];
      const t = figures[`${rps} mTLS`];
      return `at ${rps} calls/s mTLS cost the pair ${(t.cpu - c.cpu).toFixed(0)} µs of CPU per call (${(((t.cpu - c.cpu) / c.cpu) * 100).toFixed(0)}%) and moved the added p50 by ${ms(t.p50 - c.p50)} ms, the added p99 by ${ms(t.p99 - c.p99)} ms`;
    }).join("; ");
    log();
    log(resultTable);
    log();
    log(`${mtlsCost[0].toUpperCase()}${mtlsCost.slice(1)}.`);

    if (WRITE) {
      const today = new Date().toISOString().slice(0, 16).replace("T", " ");
      const heading = "## Sidecar pair with and without mTLS (issue 11: zero trust)";
      writeSection(
        [
          heading,
          "",
          "```sh",
          `${COMMAND} --mtls      # about ${Math.ceil((MTLS_RATES.length * 4 * (WINDOWS * WINDOW_S + WARMUP_S) + 10) / 10) * 10} s; BENCH_WRITE=0 leaves this file alone`,
          "```",
          "",
          "Two drill meshes side by side (`test/mesh-drills/drill-mesh.ts`), one EchoService replica behind a",
          "caller's and a callee's sidecar each: one cleartext, one with the mesh's mTLS (TLS 1.3, client",
          "certificates from the mesh CA through SDS files, RBAC on the callee's inbound listener,",
          "x-forwarded-client-cert: `envoy/mtls.ts`, as `make mesh` generates them). At each rate the four",
          "paths (each mesh's app directly, each mesh's pair) take turns in windows of ghz calls",
          `(\`--rps <rate> --connections 1 -c ${WORKERS}\`); "added" is a pair's percentile minus its own app's, and`,
          "the CPU per call is both Envoys' utime + stime over the pair windows divided by the calls.",
          "",
          `Measured ${today} UTC. ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), Linux ${os.release()},`,
          `Node ${process.version}, Envoy ${envoyVersion()}, load average at the start ${load.map((l) => l.toFixed(2)).join(" ")}, at the end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}.`,
          `${WINDOWS} windows × ${WINDOW_S} s per path and rate after ${WARMUP_S} s of warm-up each; every call answered OK:`,
          "",
          resultTable,
          "",
          `${mtlsCost[0].toUpperCase()}${mtlsCost.slice(1)}.`,
          "The proxies keep their upstream connections open, so a handshake is rare; what mTLS adds per",
          "call is the encryption of each request and answer on the hop between the two sidecars, and the",
          "RBAC check. The percentiles move with whatever else the machine runs (its cores shared with ghz,",
          "the apps and four Envoys), and a difference below the spread of one path's windows is noise:",
          "compare the CPU per call first.",
        ].join("\n"),
        heading,
      );
      log(`BENCHMARKS.md: "${heading.slice(3)}" section written`);
    }
  } finally {
    for (const m of meshes) await m.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  if (process.argv.includes("--mtls")) await compareMtls();
  else await main();
} catch (err) {
  process.stderr.write(`bench/sidecar.ts: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
