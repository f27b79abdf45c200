// The container image, without Docker (no engine runs on these machines): the
// Dockerfile and .dockerignore read as data. Node as the project pins it; a
// non-root numeric user; an exec-form entrypoint, so node is PID 1 and gets
// SIGTERM itself; production dependencies only. Then the entrypoint's command
// runs here (a service, and the edge's reflection backend) and every file it
// loads must be one the image ships: copied by the final stage, kept by
// .dockerignore, or installed by `npm ci --omit=dev` for platform and services.
// It runs with token keys as the chart gives them: files from
// `node runner/keys.ts --out <dir>`, named by SHOP_JWKS_FILE and SHOP_SIGNING_KEYS_FILE.
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "../support/process.ts";

interface Instruction {
  stage: number;
  op: string;
  args: string;
}

function dockerfile(): Instruction[] {
  const text = readFileSync(join(repoRoot, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of text.split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === "FROM") stage++;
    out.push({ stage, op: op.toUpperCase(), args });
  }
  return out;
}

/** .dockerignore as Docker reads it: the last matching rule wins, and a rule matching a folder covers what is in it. */
function dockerignore(): (path: string) => boolean {
  const rules = readFileSync(join(repoRoot, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const glob = (negate ? l.slice(1) : l).replace(/^\/+/, "");
      const source = glob
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((part) => ({ "**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]" })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, "\\$&"))
        .join("");
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const prefixes = path.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    let ignored = false;
    for (const rule of rules) if (prefixes.some((p) => rule.regex.test(p))) ignored = !rule.negate;
    return ignored;
  };
}

type LockPackages = Record<string, { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; peerDependencies?: Record<string, string>; link?: boolean; resolved?: string }>;

/** Where node finds `dep` from the package at `from` (a package-lock path), as npm laid node_modules out. */
function resolveIn(packages: LockPackages, from: string, dep: string): string | undefined {
  const parts = from === "" ? [] : from.split("/");
  for (let n = parts.length; n >= 0; n--) {
    if (n > 0 && parts[n - 1] === "node_modules") continue;
    const base = parts.slice(0, n).join("/");
    const candidate = base ? `${base}/node_modules/${dep}` : `node_modules/${dep}`;
    if (packages[candidate]) return candidate;
  }
  return undefined;
}

/** The package-lock paths `npm ci --omit=dev --workspace=platform --workspace=services` installs. */
function productionPackages(): Set<string> {
  const packages = (JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as { packages: LockPackages }).packages;
  const queue = Object.keys(packages).filter((k) => k === "platform" || /^services\/[^/]+$/.test(k));
  const installed = new Set<string>();
  while (queue.length > 0) {
    const at = queue.pop() as string;
    const entry = packages[at];
    for (const dep of Object.keys({ ...entry?.dependencies, ...entry?.optionalDependencies, ...entry?.peerDependencies })) {
      const path = resolveIn(packages, at, dep);
      if (!path || installed.has(path)) continue;
      installed.add(path);
      const target = packages[path];
      queue.push(target.link && target.resolved ? target.resolved : path);
    }
  }
  return installed;
}

/**
 * Runs `node runner/instance.ts <args>` as the image's entrypoint would (a
 * bare environment plus the token-key files the chart mounts, from the
 * project's key generator), until it logs "listening"; then SIGTERM. Resolves
 * with the files it loaded and how it exited.
 */
function runEntrypoint(args: string[]): Promise<{ files: string[]; code: number | null; lines: string[] }> {
  const scratch = mkdtempSync(join(tmpdir(), "shop-image-"));
  const record = join(scratch, "loaded.json");
  const hook = join(dirname(fileURLToPath(import.meta.url)), "record-imports.ts");
  const keys = join(scratch, "keys");
  execFileSync(process.execPath, ["runner/keys.ts", "--out", keys], { cwd: repoRoot, stdio: "ignore" });
  // A service, or edge-backend: each signs with its own file, as in the chart.
  const signer = args[0];
  const env = {
    PATH: dirname(process.execPath),
    NODE_ENV: "production",
    DATA_DIR: ":memory:",
    PORT: "0",
    SHOP_RECORD_IMPORTS: record,
    SHOP_JWKS_FILE: join(keys, "jwks.json"),
    SHOP_SIGNING_KEYS_FILE: join(keys, "signing", `${signer}.json`),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", hook, "runner/instance.ts", ...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    let buffered = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"msg":"listening"')) child.kill("SIGTERM");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => lines.push(chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      try {
        const files = (JSON.parse(readFileSync(record, "utf8")) as string[]).map((u) => relative(repoRoot, fileURLToPath(u)));
        resolve({ files, code, lines });
      } catch (err) {
        reject(new Error(`${(err as Error).message}\n${lines.join("\n")}`));
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    });
  });
}

describe("container image (Dockerfile, .dockerignore; read, since Docker cannot run here)", function () {
  this.timeout(120_000);
  const instructions = dockerfile();
  const finalStage = Math.max(...instructions.map((i) => i.stage));
  const final = instructions.filter((i) => i.stage === finalStage);

  it("builds on the Node the project pins, and the final stage gets production dependencies and the built web app only", function () {
    const pinned = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { devDependencies: Record<string, string> }).devDependencies.node;
    const base = instructions.find((i) => i.op === "ARG" && i.args.startsWith("NODE_IMAGE="))?.args;
    expect(base).to.match(new RegExp(`^NODE_IMAGE=node:${pinned.replace(/\./g, "\\.")}-`));
    expect(instructions.filter((i) => i.op === "FROM").map((i) => i.args)).to.deep.equal(["${NODE_IMAGE} AS deps", "${NODE_IMAGE} AS web", "${NODE_IMAGE}"]);
    const installs = instructions.filter((i) => i.op === "RUN" && /\bnpm\b/.test(i.args));
    expect(installs.map((i) => i.stage)).to.deep.equal([0, 1]);
    expect(installs[0].args).to.match(/^npm ci /).and.to.include("--omit=dev").and.to.include("--workspace=platform").and.to.include("--workspace=services");
    // The web stage needs vite (a dev dependency); only its static output reaches the final stage.
    expect(installs[1].args).to.include("vite build");
    expect(final.filter((i) => i.op === "COPY" && i.args.startsWith("--from=web")).map((i) => i.args)).to.deep.equal(["--from=web /app/web/dist web/dist"]);
    expect(final.filter((i) => i.op === "RUN"), "nothing runs in the final stage").to.deep.equal([]);
  });

  it("runs as a numeric non-root user, with node as PID 1 (exec-form entrypoint) so SIGTERM reaches it", function () {
    const users = final.filter((i) => i.op === "USER").map((i) => i.args);
    expect(users.length).to.equal(1);
    const [uid] = users[0].split(":");
    expect(Number(uid)).to.be.greaterThan(0);
    const entrypoint = final.filter((i) => i.op === "ENTRYPOINT").map((i) => JSON.parse(i.args) as string[]);
    expect(entrypoint).to.deep.equal([["node", "runner/instance.ts"]]);
    expect(final.some((i) => i.op === "CMD"), "the service is the argument; no default").to.equal(false);
  });

  for (const args of [["orders"], ["edge-backend"]]) {
    it(`ships everything \`node runner/instance.ts ${args.join(" ")}\` loads, and that process drains and exits 0 on SIGTERM`, async function () {
      const { files, code, lines } = await runEntrypoint(args);
      expect(code, lines.join("\n")).to.equal(0);
      expect(lines.some((l) => l.includes('"msg":"draining"')), "it drained").to.equal(true);
      const ignored = dockerignore();
      const copies = final.filter((i) => i.op === "COPY" && !i.args.startsWith("--from")).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
      const fromDeps = final.filter((i) => i.op === "COPY" && i.args.startsWith("--from=deps")).map((i) => i.args.split(/\s+/).slice(1));
      expect(fromDeps, "node_modules comes from the deps stage").to.deep.equal([["/app/node_modules", "node_modules"]]);
      const installed = productionPackages();
      const missing: string[] = [];
      for (const file of [...files, "topology.json"]) {
        if (file.startsWith("..")) continue; // Node's own files, outside the repository
        const pkg = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1];
        if (pkg) {
          if (!installed.has(pkg)) missing.push(`${file} (${pkg} is not a production dependency of platform or services)`);
          continue;
        }
        if (!copies.some((src) => file === src || file.startsWith(`${src.replace(/\/$/, "")}/`))) missing.push(`${file} (no COPY in the final stage)`);
        else if (ignored(file)) missing.push(`${file} (excluded by .dockerignore)`);
      }
      expect(missing).to.deep.equal([]);
      expect(files.filter((f) => f.startsWith("services/")).length, "the services' own code was loaded").to.be.greaterThan(0);
    });
  }

  it("keeps out of the build context what the image must not carry", function () {
    const ignored = dockerignore();
    for (const path of ["node_modules/pino/package.json", "services/orders/node_modules/x", ".git/HEAD", "tools/bin/helm", ".venv/bin/python", "test/helm/chart.test.ts", "services/orders/orders.test.ts", "web/dist/index.html", "helm/shop/values.yaml", "data/orders.db", ".infra/postgres"]) {
      expect(ignored(path), path).to.equal(true);
    }
    for (const path of ["package.json", "package-lock.json", "web/package.json", "web/src/main.ts", "envoy/contracts.ts", "envoy/ports.ts", "services/orders/index.ts", "gen/shop/orders/v1/orders_pb.js", "gen/descriptors.binpb", "topology.json"]) {
      expect(ignored(path), path).to.equal(false);
    }
  });
});
