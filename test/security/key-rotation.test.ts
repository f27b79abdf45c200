// Key rotation under steady load, with the project's own tool
// (runner/keys.ts --rotate / --retire) on the key files two real server
// processes read: A relays to B with service tokens A signs; the test signs
// user tokens as the users service would. Through a rotation of the user key
// and of A's service key, every call succeeds, new tokens carry the new kid,
// tokens signed before verify until the old key is retired, and are refused
// after.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeProtectedHeader } from "jose";
import { createTokenAuthority } from "@shop/platform";
import type { TokenAuthority } from "@shop/platform";
import { EchoService } from "../../gen/mesh/testing/v1/echo_pb.js";
import { writeKeyDir } from "../../platform/token-keys.ts";
import { Code, ConnectError, grpcClient } from "../support/connect-clients.ts";
import { repoRoot, startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";

function keysTool(...args: string[]): string {
  const res = spawnSync(process.execPath, ["runner/keys.ts", ...args], { cwd: repoRoot, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`runner/keys.ts ${args.join(" ")}: ${res.stderr}`);
  return res.stdout.trim();
}

describe("token key rotation under load", function () {
  this.timeout(120_000);
  let dir: string;
  let a: ServerProcess;
  let b: ServerProcess;
  let users: TokenAuthority;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), "shop-keys-"));
    const written = writeKeyDir(dir, ["users", "echo"]);
    const files = (holder: string) => ({ SHOP_JWKS: "", SHOP_SIGNING_KEYS: "", SHOP_JWKS_FILE: written.jwksFile, SHOP_SIGNING_KEYS_FILE: written.signingFiles.get(holder)! });
    b = await startServerProcess("test/fixtures/echo-server.ts", { ...files("echo"), ECHO_INSTANCE: "b" });
    a = await startServerProcess("test/fixtures/echo-server.ts", { ...files("echo"), ECHO_INSTANCE: "a", ECHO_DOWNSTREAM: b.url });
    // The users service's view: its own signing file, read again when it changes.
    users = authorityOver(written.jwksFile, written.signingFiles.get("users")!);
  });

  after(async function () {
    await a?.stop();
    await b?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function authorityOver(jwks: string, signing: string): TokenAuthority {
    const saved = { ...process.env };
    Object.assign(process.env, { SHOP_JWKS: "", SHOP_SIGNING_KEYS: "", SHOP_JWKS_FILE: jwks, SHOP_SIGNING_KEYS_FILE: signing });
    try {
      return createTokenAuthority();
    } finally {
      for (const k of ["SHOP_JWKS", "SHOP_SIGNING_KEYS", "SHOP_JWKS_FILE", "SHOP_SIGNING_KEYS_FILE"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  }

  it("loses no call through a rotation, keeps old tokens until the old key is retired, then refuses them", async function () {
    const failures: string[] = [];
    const kids = { user: new Set<string>(), relayed: 0 };
    let stop = false;
    const whoAmI = (token: string) => grpcClient(EchoService, a.url).whoAmI({}, { headers: { authorization: `Bearer ${token}` } });
    const load = (async () => {
      // Bounded: at most 3,000 rounds, and the test stops it well before.
      for (let i = 0; i < 3000 && !stop; i++) {
        try {
          const { token } = await users.issueUserToken(`user-${i}`);
          kids.user.add(decodeProtectedHeader(token).kid!);
          expect((await whoAmI(token)).subject).to.equal(`user-${i}`);
          // A signs a service token for B with its own key.
          await grpcClient(EchoService, a.url).relay({ message: `m${i}` });
          kids.relayed++;
        } catch (err) {
          failures.push(String(err));
        }
        await sleep(10);
      }
    })();

    await sleep(1000);
    const before = (await users.issueUserToken("old")).token;
    const oldKid = decodeProtectedHeader(before).kid!;
    const serviceKid = (JSON.parse(readFileSync(join(dir, "jwks.json"), "utf8")) as { keys: Array<{ kid: string }> }).keys.find((k) => k.kid.startsWith("service:echo:"))!.kid;
    const newUserKid = keysTool("--rotate", "user", "--dir", dir);
    keysTool("--rotate", "service:echo", "--dir", dir);
    await sleep(2500);
    const after = (await users.issueUserToken("new")).token;
    expect(decodeProtectedHeader(after).kid, "new tokens are signed with the new key").to.equal(newUserKid);
    expect((await whoAmI(before)).subject, "a token signed before the rotation still verifies").to.equal("old");

    // Retiring A's old service key too: relays keep working only if A signs with the new one.
    keysTool("--retire", oldKid, "--dir", dir);
    keysTool("--retire", serviceKid, "--dir", dir);
    await sleep(2500);
    stop = true;
    await load;
    const refused = await whoAmI(before).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refused?.code, "a token of a retired key").to.equal(Code.Unauthenticated);
    expect(failures.slice(0, 5), `${failures.length} calls failed during the rotation`).to.deep.equal([]);
    expect(kids.user).to.include(oldKid).and.to.include(newUserKid);
    expect(kids.relayed).to.be.greaterThan(100);
  });
});
