// Start a server as its own OS process and read its JSON log lines: what a
// real deployment does, so signals, exit codes and logs are the real ones.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import "./keys.ts";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface ServerProcess {
  readonly port: number;
  readonly url: string;
  readonly address: string;
  readonly child: ChildProcess;
  /** Every JSON line printed so far. */
  readonly logs: LogLine[];
  /** Resolves with the first line matching, waiting up to timeoutMs. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/**
 * Runs `node <script>` with Node 24 (the project's own), waits for the log
 * line that carries "port" and msg "listening".
 */
export async function startServerProcess(script: string, env: Record<string, string> = {}, startTimeoutMs = 15_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [script], {
    cwd: repoRoot,
    env: { ...process.env, PORT: "0", LOG_LEVEL: "debug", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    logs.push(line);
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  createInterface({ input: child.stderr! }).on("line", (text) => stderr.push(text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // "close" comes after the process exited and its stdio ended, so every log line has been read.
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 10_000) => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr.join("\n")}`)), timeoutMs);
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`process exited before logging the line; stderr: ${stderr.join("\n")}`));
      });
    });
  };
  const listening = await waitForLog((l) => l.msg === "listening" && typeof l.port === "number", startTimeoutMs);
  const port = listening.port as number;
  return {
    port,
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    waitForLog,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
