// Fail closed: nothing serves beyond loopback with development keys, and the
// mesh's instance runner (what `make mesh` and the container image start)
// does not start at all without configured keys unless SHOP_DEV_KEYS=1 says
// so. Each case is the real runner as a process.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { writeKeyDir } from "../../platform/token-keys.ts";
import { repoRoot, startServerProcess } from "../support/process.ts";

/** No keys from the suite: the runner sees only what the case gives it. */
const NO_KEYS = { SHOP_JWKS: "", SHOP_SIGNING_KEYS: "", SHOP_JWKS_FILE: "", SHOP_SIGNING_KEYS_FILE: "", SHOP_DEV_KEYS: "" };

/** Runs a runner expected to refuse: its exit code and what it said, within 20 s. */
function refusal(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...NO_KEYS, PORT: "0", DATA_DIR: ":memory:", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`still running after 20 s (it should have refused): ${output.slice(-2000)}`));
    }, 20_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Runs a runner expected to start: resolves once it logs "listening", then stops it. */
function listens(args: string[], env: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...NO_KEYS, PORT: "0", DATA_DIR: ":memory:", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no "listening" within 20 s: ${output.slice(-2000)}`));
    }, 20_000);
    child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
    child.stdout!.on("data", (c: Buffer) => {
      output += c.toString();
      for (const line of output.split("\n")) {
        if (!line.includes('"listening"')) continue;
        clearTimeout(timer);
        child.kill("SIGKILL");
        resolve(JSON.parse(line) as Record<string, unknown>);
        return;
      }
    });
    child.once("close", () => {
      clearTimeout(timer);
      reject(new Error(`exited before listening: ${output.slice(-2000)}`));
    });
  });
}

/** An address of this machine beyond loopback, when it has one. */
const outside = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address;

describe("fail closed", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "shop-fail-closed-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("make run binds 127.0.0.1 by default, with development keys it makes in DEV_KEYS_DIR", async function () {
    const devKeys = join(dir, "dev-keys");
    const shop = await startServerProcess("runner/embedded.ts", { ...NO_KEYS, DATA_DIR: ":memory:", DEV_KEYS_DIR: devKeys, HOST: "" });
    try {
      expect(existsSync(join(devKeys, "jwks.json")) && existsSync(join(devKeys, "all.json"))).to.equal(true);
      expect(shop.logs.some((l) => String(l.msg).startsWith("development token keys"))).to.equal(true);
      if (outside) {
        // Not reachable from another address of the machine.
        const reached = await fetch(`http://${outside}:${shop.port}/healthz`).then(() => true, () => false);
        expect(reached, `reached on ${outside}`).to.equal(false);
      }
      expect((await fetch(`${shop.url}/healthz`)).status).to.equal(200);
    } finally {
      await shop.stop();
    }
  });

  for (const host of ["0.0.0.0", "::"]) {
    it(`make run refuses HOST=${host} with development keys, saying what to set`, async function () {
      const { code, output } = await refusal(["runner/embedded.ts"], { HOST: host, DEV_KEYS_DIR: join(dir, "dev-keys") });
      expect(code).to.equal(2);
      expect(output).to.contain(`refusing to listen on ${host} with development token keys`).and.to.contain("SHOP_JWKS_FILE");
    });
  }

  it("make run serves beyond loopback with configured keys", async function () {
    const keys = writeKeyDir(join(dir, "configured"), ["users", "catalog", "inventory", "orders", "payments", "notifications", "storefront"]);
    const shop = await startServerProcess("runner/embedded.ts", { ...NO_KEYS, DATA_DIR: ":memory:", HOST: "0.0.0.0", SHOP_JWKS_FILE: keys.jwksFile, SHOP_SIGNING_KEYS_FILE: keys.allFile });
    try {
      expect((await fetch(`${shop.url}/healthz`)).status).to.equal(200);
      expect(shop.logs.some((l) => String(l.msg).startsWith("development token keys"))).to.equal(false);
    } finally {
      await shop.stop();
    }
  });

  it("runner/instance.ts (make mesh, the image) refuses to start without configured keys", async function () {
    const { code, output } = await refusal(["runner/instance.ts", "catalog"], {});
    expect(code).to.equal(2);
    expect(output).to.contain("no token keys are configured").and.to.contain("SHOP_DEV_KEYS=1");
  });

  it("runner/instance.ts starts with SHOP_DEV_KEYS=1, on loopback only", async function () {
    const env = { ...NO_KEYS, SHOP_DEV_KEYS: "1", DEV_KEYS_DIR: join(dir, "dev-keys"), DATA_DIR: ":memory:" };
    const line = await listens(["runner/instance.ts", "catalog"], env);
    expect(line.service).to.equal("catalog");
    const { code, output } = await refusal(["runner/instance.ts", "catalog"], { SHOP_DEV_KEYS: "1", DEV_KEYS_DIR: join(dir, "dev-keys"), HOST: "0.0.0.0" });
    expect(code).to.equal(2);
    expect(output).to.contain("refusing to listen on 0.0.0.0 with development token keys");
  });
});
