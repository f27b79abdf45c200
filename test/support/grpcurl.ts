// The real grpcurl binary, installed by `make install` into tools/bin.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./process.ts";

export const grpcurlPath = join(repoRoot, "tools/bin/grpcurl");

export interface GrpcurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs grpcurl with the given arguments; never throws on a non-zero exit. */
export function grpcurl(args: string[], timeoutMs = 10_000): Promise<GrpcurlResult> {
  if (!existsSync(grpcurlPath)) throw new Error(`grpcurl not found at ${grpcurlPath}: run 'make install'`);
  return new Promise((resolve) => {
    execFile(grpcurlPath, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
