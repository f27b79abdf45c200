// connectrpc's conformance suite (connectconformance v1.0.7, server mode,
// built into tools/bin by `make tools/bin/connectconformance`) against two
// servers-under-test that serve the same ConformanceService handlers
// (conformance-service.ts) with the same config (config.yaml):
//
//   - connect-node-sut.ts: plain connect-node, the baseline;
//   - platform-sut.ts: the platform's createServer().
//
// The bar: every case plain connect-node passes, the platform passes too.
// Plain connect-node must itself pass everything but the cases listed, with
// their reasons, in stalls-connect-node.txt and flaky-connect-node.txt.
//
// Each server-under-test gets three kinds of invocation, one after the other:
//   1. every suite but "Server Message Size";
//   2. "Server Message Size" on its own (over HTTP/1.1 its cases damage the
//      keep-alive connection they run on: flaky-connect-node.txt), minus
//      the stalling cases;
//   3. each case of stalls-connect-node.txt in an invocation of its own (one
//      stalls its whole HTTP/2 connection, and everything queued behind it).
// The combined output (progress lines left out) is saved to
// $TMPDIR/conformance-reference.txt and $TMPDIR/conformance-platform.txt.
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildConformanceImage, CONFORMANCE_VERSION, IMAGE_ENV, repoRoot } from "./conformance-protos.ts";

const runner = join(repoRoot, "tools/bin/connectconformance");
const CONFIG = "test/conformance/config.yaml";
const STALLS = "test/conformance/stalls-connect-node.txt";
const FLAKY = "test/conformance/flaky-connect-node.txt";
const MESSAGE_SIZE_SUITE = "Server Message Size/**";
/** Requests in flight per server, and servers at a time: the machine has two cores. */
const PARALLEL = "2";
const MAX_SERVERS = "1";
/** Bounds per invocation. Typical: 15-40 s for the main run, 20 s for the size suite, 23 s for a stalling case. */
const MAIN_TIMEOUT_MS = 300_000;
const SIZE_TIMEOUT_MS = 150_000;
const ISOLATED_TIMEOUT_MS = 75_000;
/** Isolated stalling cases run this many at a time: each mostly waits out the runner's 20 s result timeout. */
const ISOLATED_CONCURRENCY = 3;
/** Per server-under-test; in practice about 1.5-3 minutes. */
const SUT_TIMEOUT_MS = 15 * 60_000;

interface Sut {
  readonly label: string;
  readonly script: string;
  readonly outputFile: string;
}

const reference: Sut = { label: "plain connect-node", script: "test/conformance/connect-node-sut.ts", outputFile: join(tmpdir(), "conformance-reference.txt") };
const platform: Sut = { label: "platform", script: "test/conformance/platform-sut.ts", outputFile: join(tmpdir(), "conformance-platform.txt") };

type Outcome = "passed" | "failed" | "flaky-failed";

interface CaseResult {
  readonly outcome: Outcome;
  /** What the suite printed for a failure: expected vs actual. */
  readonly detail: string;
}

interface Judgement {
  readonly cases: Map<string, CaseResult>;
  /** Cases the runner counted but could not run (client timed out or exited). */
  couldNotRun: number;
}

/** Test case patterns from a file in the suite's @file format: one a line, # comments. */
function patternsOf(file: string): string[] {
  return readFileSync(join(repoRoot, file), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** The suite's pattern syntax: "*" is one name component, "**" zero or more. */
function matches(pattern: string, name: string): boolean {
  const p = pattern.split("/");
  const n = name.split("/");
  const at = (i: number, j: number): boolean => {
    if (i === p.length) return j === n.length;
    if (p[i] === "**") return at(i + 1, j) || (j < n.length && at(i, j + 1));
    return j < n.length && (p[i] === "*" || p[i] === n[j]) && at(i + 1, j + 1);
  };
  return at(0, 0);
}

/** Reads FAILED / INFO blocks (a header line, then tab-indented detail lines) and the progress lines of a --vv run. */
function parseOutput(output: string): { sent: Set<string>; failed: Map<string, string>; flakyFailed: Map<string, string>; couldNotRun: number; summary: string } {
  const sent = new Set<string>();
  const failed = new Map<string, string>();
  const flakyFailed = new Map<string, string>();
  const lines = output.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const progress = /^Sending request for "(.*)"\.\.\.$/.exec(line);
    if (progress) {
      sent.add(progress[1]);
      continue;
    }
    const failure = /^FAILED: (.*?)(:| was expected to fail but did not)$/.exec(line) ?? /^INFO: (.*) failed \(as expected\)(:)$/.exec(line);
    if (!failure) continue;
    const detail: string[] = [];
    if (failure[2] !== ":") detail.push(failure[2].trim());
    while (i + 1 < lines.length && lines[i + 1].startsWith("\t")) detail.push(lines[++i].slice(1));
    (line.startsWith("INFO") ? flakyFailed : failed).set(failure[1], detail.join("\n"));
  }
  const couldNotRun = Number(/^Another (\d+) could not be run/m.exec(output)?.[1] ?? 0);
  const summary = /^Total cases: \d+\n\d+ passed, \d+ failed.*$/m.exec(output)?.[0].replace("\n", ": ") ?? "";
  return { sent, failed, flakyFailed, couldNotRun, summary };
}

/** One connectconformance invocation against the SUT; the output goes to the SUT's output file too. */
function runSuite(sut: Sut, env: NodeJS.ProcessEnv, args: string[], timeoutMs: number): Promise<ReturnType<typeof parseOutput>> {
  const argv = ["--mode", "server", "--conf", CONFIG, "--vv", "--parallel", PARALLEL, "--max-servers", MAX_SERVERS, ...args, "--", process.execPath, sut.script];
  return new Promise((resolve, reject) => {
    // Its own process group: at the time bound the runner, its reference
    // clients and the servers-under-test all go (the runner handles no signals).
    const child = spawn(runner, argv, { cwd: repoRoot, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      const output = Buffer.concat(chunks).toString("utf8");
      const kept = output
        .split("\n")
        .filter((l) => !/^(Sending request for|Received response for) "/.test(l))
        .join("\n");
      writeFileSync(sut.outputFile, `=== connectconformance ${args.join(" ")} (exit ${timedOut ? "killed at the time bound" : code})\n${kept}\n`, { flag: "a" });
      if (timedOut) return reject(new Error(`connectconformance ${args.join(" ")} against ${sut.label} did not finish within ${timeoutMs} ms:\n${kept.slice(-3000)}`));
      const parsed = parseOutput(output);
      if (!parsed.summary) return reject(new Error(`connectconformance ${args.join(" ")} against ${sut.label} printed no summary (exit ${code}):\n${kept.slice(-3000)}`));
      resolve(parsed);
    });
  });
}

async function inPool<T, R>(items: readonly T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Every case, by full name, with its outcome: the three kinds of invocation merged. */
async function judge(sut: Sut, env: NodeJS.ProcessEnv, stalls: readonly string[]): Promise<Judgement> {
  writeFileSync(sut.outputFile, `connectconformance ${CONFORMANCE_VERSION} against ${sut.label} (${sut.script}), config ${CONFIG}\n`);
  const runs = [
    await runSuite(sut, env, ["--skip", MESSAGE_SIZE_SUITE], MAIN_TIMEOUT_MS),
    await runSuite(sut, env, ["--run", MESSAGE_SIZE_SUITE, "--skip", `@${STALLS}`, "--known-flaky", `@${FLAKY}`], SIZE_TIMEOUT_MS),
    ...(await inPool(stalls, ISOLATED_CONCURRENCY, (name) => runSuite(sut, env, ["--run", name], ISOLATED_TIMEOUT_MS))),
  ];
  const judgement: Judgement = { cases: new Map(), couldNotRun: 0 };
  for (const run of runs) {
    judgement.couldNotRun += run.couldNotRun;
    for (const name of run.sent) judgement.cases.set(name, { outcome: "passed", detail: "" });
    for (const [name, detail] of run.flakyFailed) judgement.cases.set(name, { outcome: "flaky-failed", detail });
    for (const [name, detail] of run.failed) judgement.cases.set(name, { outcome: "failed", detail });
  }
  return judgement;
}

const named = (j: Judgement, outcome: Outcome) => [...j.cases].filter(([, r]) => r.outcome === outcome).map(([name]) => name).sort();
const counts = (j: Judgement) =>
  `${j.cases.size} cases: ${named(j, "passed").length} passed, ${named(j, "failed").length} failed, ` +
  `${named(j, "flaky-failed").length} failed among the known-flaky` +
  (j.couldNotRun > 0 ? `, ${j.couldNotRun} could not be run` : "");
const indent = (text: string) => "    " + text.replaceAll("\n", "\n    ");

describe(`connectrpc conformance ${CONFORMANCE_VERSION}: the platform's server against plain connect-node`, function () {
  let dir: string;
  let stalls: string[];
  let flaky: string[];
  let baseline: Judgement;
  let ours: Judgement;

  before(async function () {
    this.timeout(2 * SUT_TIMEOUT_MS);
    if (!existsSync(runner)) throw new Error(`${runner} not found: run 'make tools/bin/connectconformance' (or 'make install')`);
    const version = execFileSync(runner, ["--version"], { encoding: "utf8" }).trim();
    expect(version, "tools/bin/connectconformance").to.equal(`connectconformance ${CONFORMANCE_VERSION}`);
    dir = mkdtempSync(join(tmpdir(), "shop-conformance-"));
    const image = join(dir, "conformance.binpb");
    buildConformanceImage(image);
    const env = { ...process.env, [IMAGE_ENV]: image };
    stalls = patternsOf(STALLS);
    flaky = patternsOf(FLAKY);
    // One after the other: the machine has two cores.
    baseline = await judge(reference, env, stalls);
    console.log(`      ${reference.label}: ${counts(baseline)} (output: ${reference.outputFile})`);
    for (const name of named(baseline, "failed")) console.log(`        × ${name}${stalls.includes(name) ? " (listed: stalls)" : ""}`);
    ours = await judge(platform, env, stalls);
    console.log(`      ${platform.label}: ${counts(ours)} (output: ${platform.outputFile})`);
    const baselineFailed = new Set(named(baseline, "failed"));
    for (const name of named(ours, "failed")) console.log(`        × ${name}${baselineFailed.has(name) ? " (fails on plain connect-node too)" : ""}`);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs the same cases against both, every one of them", () => {
    expect(baseline.couldNotRun, `${reference.label}: cases that could not be run`).to.equal(0);
    expect(ours.couldNotRun, `${platform.label}: cases that could not be run`).to.equal(0);
    expect([...ours.cases.keys()].sort()).to.deep.equal([...baseline.cases.keys()].sort());
    expect(baseline.cases.size).to.be.greaterThan(1500);
  });

  it("plain connect-node passes every case but the listed ones", () => {
    const unlisted = named(baseline, "failed").filter((name) => !stalls.includes(name) && !flaky.some((p) => matches(p, name)));
    expect(
      unlisted.map((name) => `${name}\n${indent(baseline.cases.get(name)!.detail)}`),
      "cases the baseline fails that no list explains: a bug in conformance-service.ts or the SUT, or a new connect-node behaviour to list with its reason",
    ).to.deep.equal([]);
    expect(named(baseline, "passed").length).to.be.greaterThan(1500);
  });

  it("still stalls plain connect-node on every case of stalls-connect-node.txt (the list is not stale)", () => {
    const stale = stalls.filter((name) => baseline.cases.get(name)?.outcome !== "failed");
    expect(stale, `passed by ${reference.label} now: remove them from ${STALLS}`).to.deep.equal([]);
  });

  it("passes on the platform every case plain connect-node passes", () => {
    const regressions = named(baseline, "passed").filter((name) => ours.cases.get(name)?.outcome !== "passed" && !flaky.some((p) => matches(p, name)));
    expect(
      regressions.map((name) => `${name}\n${indent(ours.cases.get(name)?.detail ?? "not run")}`),
      `cases ${reference.label} passes and the platform fails (full output: ${platform.outputFile})`,
    ).to.deep.equal([]);
  });
});
