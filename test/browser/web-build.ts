// The browser tests drive the built app (web/dist), as `make run` serves it.
// A fresh clone has none, and a stale one would test old code: build it when
// any of its sources (the app, its config, the generated clients) is newer.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../support/process.ts";

const webDir = join(repoRoot, "web");
const builtIndex = join(webDir, "dist", "index.html");

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

export function webBuildIsStale(): boolean {
  let built: number;
  try {
    built = statSync(builtIndex).mtimeMs;
  } catch {
    return true;
  }
  const sources = [join(webDir, "index.html"), join(webDir, "vite.config.ts"), join(webDir, "src"), join(repoRoot, "gen")];
  return sources.some((s) => newestMtime(s) > built);
}

/** Runs `vite build` in web/ with this Node (24) when the bundle is missing or stale. */
export function ensureWebBuild(): void {
  if (!webBuildIsStale()) return;
  const vite = join(repoRoot, "node_modules", "vite", "bin", "vite.js");
  const result = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], { cwd: webDir, encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) {
    throw new Error(`vite build failed (exit ${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
}
