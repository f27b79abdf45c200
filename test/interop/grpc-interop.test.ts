// grpc-go's interop client (google.golang.org/grpc/interop/client, pinned by
// tools-src/grpc-interop/go.mod) against this project's server: every
// standard case that needs no credentials, TLS or GCE, one process per case,
// each bounded in time; once straight to the interop server
// (interop-server.ts), once through a sidecar pair the mesh's generator
// makes for it (interop-mesh.ts), as a call between two services goes.
//
// `make suites` (part of `make install`) builds the client and the
// descriptor tool into tools/bin.
import { expect } from "chai";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";
import { descriptorTool, interopClient, interopDescriptorBytes, loadInteropRegistry } from "./descriptors.ts";
import { startInteropMesh } from "./interop-mesh.ts";
import type { InteropMesh } from "./interop-mesh.ts";

/** Longest a single case may run: the soak cases' own bound is 10 s, the ORCA ones wait up to 30 s by design but pass in ~2 s. */
const CASE_TIMEOUT_MS = 30_000;

/** The ORCA cases read load reports through the client's test LB policy, which only a service config selects. */
const ORCA_SERVICE_CONFIG = JSON.stringify({ loadBalancingConfig: [{ test_backend_metrics_load_balancer: {} }] });

interface InteropCase {
  readonly name: string;
  readonly args?: readonly string[];
}

/** Every case of the client that needs no credentials, TLS or GCE, in the client's order. */
const CASES: readonly InteropCase[] = [
  { name: "empty_unary" },
  { name: "large_unary" },
  { name: "client_streaming" },
  { name: "server_streaming" },
  { name: "ping_pong" },
  { name: "empty_stream" },
  { name: "timeout_on_sleeping_server" },
  { name: "cancel_after_begin" },
  { name: "cancel_after_first_response" },
  { name: "status_code_and_message" },
  { name: "special_status_message" },
  { name: "custom_metadata" },
  { name: "unimplemented_method" },
  { name: "unimplemented_service" },
  { name: "pick_first_unary" },
  // Ten large unary calls on one channel, then each on a new channel; the client's own defaults (1 s per call, 10 s overall).
  { name: "rpc_soak" },
  { name: "channel_soak" },
  { name: "orca_per_rpc", args: [`--service_config_json=${ORCA_SERVICE_CONFIG}`] },
  { name: "orca_oob", args: [`--service_config_json=${ORCA_SERVICE_CONFIG}`] },
];

/**
 * Cases the client lists that are not run, with the reason. The compressed
 * cases of the interop descriptions (client_compressed_unary and the rest)
 * are not among them: grpc-go's client does not implement them at all.
 */
const NOT_RUN: Readonly<Record<string, string>> = {
  compute_engine_creds: "needs TLS and a GCE service account",
  service_account_creds: "needs TLS and a service account key file",
  jwt_token_creds: "needs TLS and a service account key file",
  per_rpc_creds: "needs TLS and a service account key file",
  oauth2_auth_token: "needs TLS and a service account key file",
  google_default_credentials: "needs Google default credentials",
  compute_engine_channel_credentials: "needs GCE credentials",
};

interface ClientRun {
  code: number | null;
  timedOut: boolean;
  output: string;
}

function runClient(args: readonly string[], timeoutMs = CASE_TIMEOUT_MS): Promise<ClientRun> {
  return new Promise((resolve) => {
    execFile(interopClient, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, timedOut: err?.killed === true, output: `${stdout}${stderr}` });
    });
  });
}

/** What the client said about a failure: its first error lines (a soak case prints one per failed call), then its last lines. */
function clientSummary(text: string): string {
  const lines = text.trimEnd().split("\n");
  const errors = lines.filter((l) => /FATAL|failed:|exceeds max|rpc error/.test(l)).slice(0, 4);
  const last = lines.slice(-3).filter((l) => !errors.includes(l));
  return [...errors, ...(last.length > 0 ? ["...", ...last] : [])].join("\n");
}

/** The server's warnings and errors (the transport's refusals among them), the last few. */
function serverComplaints(server: ServerProcess): string {
  const lines = server.logs.filter((l) => l.level === "warn" || l.level === "error" || l.level === "fatal").slice(-3);
  return lines.length === 0 ? "" : `\nthe interop server's last warnings:\n${lines.map((l) => JSON.stringify(l)).join("\n")}`;
}

/** Runs one case; on failure the message carries the client's last lines and what context() adds. */
async function runCase(port: number, c: InteropCase, context: () => Promise<string> = async () => ""): Promise<void> {
  const run = await runClient(["--server_host=127.0.0.1", `--server_port=${port}`, `--test_case=${c.name}`, ...(c.args ?? [])]);
  if (run.code === 0) return;
  const why = run.timedOut ? `did not finish within ${CASE_TIMEOUT_MS} ms` : `exited ${run.code}`;
  expect.fail(`${c.name} ${why}:\n${clientSummary(run.output)}${await context()}`);
}

describe("grpc-go interop client", function () {
  let dir: string;
  let descriptors: string;

  before(function () {
    for (const tool of [interopClient, descriptorTool]) {
      if (!existsSync(tool)) throw new Error(`${tool} not found: run 'make tools/bin/grpc-interop-client' (or 'make install')`);
    }
    dir = mkdtempSync(join(tmpdir(), "shop-interop-"));
    descriptors = join(dir, "interop.binpb");
    writeFileSync(descriptors, interopDescriptorBytes());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("lists no case this suite neither runs nor names a reason to skip", async function () {
    // The client prints its cases in the usage of -test_case ("name : what it does").
    const help = await runClient(["-help"], 10_000);
    const listed = [...help.output.matchAll(/^\s+([a-z0-9_]+)\s*:/gm)].map((m) => m[1]);
    expect(listed, help.output).to.include("empty_unary");
    const unknown = listed.filter((name) => !CASES.some((c) => c.name === name) && !(name in NOT_RUN));
    expect(unknown, "cases of the client this suite does not know: run them or say why not").to.deep.equal([]);
  });

  describe("straight to the interop server", function () {
    let server: ServerProcess;
    before(async function () {
      this.timeout(30_000);
      server = await startServerProcess("test/interop/interop-server.ts", { INTEROP_DESCRIPTORS: descriptors });
    });
    after(async () => server?.stop());

    for (const c of CASES) {
      it(c.name, async function () {
        this.timeout(CASE_TIMEOUT_MS + 5_000);
        await runCase(server.port, c, async () => serverComplaints(server));
        expect(server.child.exitCode, "the interop server exited").to.equal(null);
      });
    }
  });

  describe("through a caller and a callee sidecar made by envoy/sidecar.ts", function () {
    let mesh: InteropMesh;
    before(async function () {
      this.timeout(60_000);
      mesh = await startInteropMesh(loadInteropRegistry(descriptors), { INTEROP_DESCRIPTORS: descriptors });
    });
    after(async () => mesh?.stop());

    for (const c of CASES) {
      it(c.name, async function () {
        this.timeout(CASE_TIMEOUT_MS + 5_000);
        await runCase(mesh.callerPort, c, async () => {
          // Envoy flushes its access log every 200 ms here (interop-mesh.ts).
          await new Promise((r) => setTimeout(r, 400));
          return `${serverComplaints(mesh.server)}\nthe sidecars' last log lines:\n${mesh.logTail(3)}`;
        });
        expect(mesh.server.child.exitCode, "the interop server exited").to.equal(null);
      });
    }
  });
});
