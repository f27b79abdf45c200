// The two binaries the chart tests run, in tools/bin:
//
//   helm          helm.sh/helm/v3 at HELM_VERSION, `go install`ed once (several
//                 minutes the first time), with the link flags of the official
//                 build so that it reports its version and, like the release
//                 binary, assumes Kubernetes 1.37 when no cluster is asked
//   kubevalidate  tools-src/kubevalidate (k8s.io/api v0.30: strict decoding
//                 and API rules, offline), `go build` on every run (Go's cache
//                 makes that about a second)
//
// `node test/helm/tools.ts` installs both (what `make install` runs).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "../support/process.ts";

export const HELM_VERSION = "v3.22.0";
/** The Kubernetes release of helm's client-go (k8s.io/client-go v0.37): what the official helm 3.22 build assumes. */
const HELM_DEFAULT_KUBE = { major: "1", minor: "37" };

export const toolsBin = join(repoRoot, "tools/bin");
export const helmPath = join(toolsBin, "helm");
export const kubevalidatePath = join(toolsBin, "kubevalidate");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; never throws on a non-zero exit. */
export function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number" && !err.killed) return reject(err);
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOBIN: toolsBin, GOFLAGS: "-mod=mod" };
}

async function installedHelmVersion(): Promise<string | undefined> {
  if (!existsSync(helmPath)) return undefined;
  const r = await run(helmPath, ["version", "--template", "{{.Version}}"]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Installs helm at HELM_VERSION into tools/bin unless that version is there. */
export async function ensureHelm(): Promise<string> {
  if ((await installedHelmVersion()) === HELM_VERSION) return helmPath;
  const ldflags = [
    `-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
    `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${HELM_DEFAULT_KUBE.major}`,
    `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_DEFAULT_KUBE.minor}`,
    `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${HELM_DEFAULT_KUBE.major}`,
    `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_DEFAULT_KUBE.minor}`,
  ].join(" ");
  const r = await run("go", ["install", "-ldflags", ldflags, `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`], { env: goEnv(), timeoutMs: 20 * 60_000 });
  if (r.code !== 0) throw new Error(`go install helm ${HELM_VERSION} failed:\n${r.stderr}`);
  const version = await installedHelmVersion();
  if (version !== HELM_VERSION) throw new Error(`tools/bin/helm reports ${version}, not ${HELM_VERSION}`);
  return helmPath;
}

/** Builds tools-src/kubevalidate into tools/bin (versions pinned by its go.mod and go.sum). */
export async function ensureKubevalidate(): Promise<string> {
  const r = await run("go", ["build", "-o", kubevalidatePath, "."], { cwd: join(repoRoot, "tools-src/kubevalidate"), env: { ...process.env, GOFLAGS: "-mod=readonly" }, timeoutMs: 10 * 60_000 });
  if (r.code !== 0) throw new Error(`go build tools-src/kubevalidate failed:\n${r.stderr}`);
  return kubevalidatePath;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [helm, kubevalidate] = await Promise.all([ensureHelm(), ensureKubevalidate()]);
  process.stdout.write(`${helm} ${HELM_VERSION}\n${kubevalidate}\n`);
}
