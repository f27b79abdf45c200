// `node runner/keys.ts --out <dir>`: a complete set of token keys for the shop
// (token-keys.ts has the layout): <dir>/jwks.json, the public key set every
// process verifies with (SHOP_JWKS_FILE); <dir>/signing/<service>.json, the
// private keys each service alone signs with (SHOP_SIGNING_KEYS_FILE;
// users.json also holds the user-token key); <dir>/signing/operator.json for
// make token and the console; <dir>/all.json, every private key, for a
// process that hosts every service (make run). Private files are 0600.
//
// `node runner/keys.ts --rotate <role> --dir <dir>`: one new key for a role
// ("user", "operator", "service:orders"): appended to jwks.json and to the
// signing files that hold that role, so tokens signed with the previous key
// keep verifying until they expire; `--retire <kid> --dir <dir>` removes a key.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadTopology, writeKeyDir } from "@shop/platform";
import { generateKey, roleOfKid, writeKeyFile } from "../platform/token-keys.ts";

const { values } = parseArgs({
  options: { out: { type: "string" }, dir: { type: "string" }, rotate: { type: "string" }, retire: { type: "string" }, force: { type: "boolean" } },
});

function fail(message: string): never {
  process.stderr.write(`runner/keys.ts: ${message}\nusage: node runner/keys.ts --out <dir> | --rotate <role> --dir <dir> | --retire <kid> --dir <dir>\n`);
  process.exit(2);
}

type KeyFile = { keys: Array<{ kid: string; d?: string }> };
const read = (path: string) => JSON.parse(readFileSync(path, "utf8")) as KeyFile;
/** Whole files only (writeKeyFile): a reader sees the old keys or the new, never half. */
const write = (path: string, file: KeyFile, secret: boolean) => writeKeyFile(path, file.keys, secret);

/** The files under dir that hold private keys. */
function signingFiles(dir: string): string[] {
  const holders = existsSync(join(dir, "signing")) ? readdirSync(join(dir, "signing")).filter((f) => f.endsWith(".json")) : [];
  return [join(dir, "all.json"), ...holders.map((h) => join(dir, "signing", h))].filter((p) => existsSync(p));
}

if (values.out) {
  if (existsSync(join(values.out, "jwks.json")) && !values.force) fail(`${values.out} already holds keys (--force replaces them all)`);
  const written = writeKeyDir(values.out, [...Object.keys(loadTopology().services), "edge-backend"]);
  process.stdout.write(`keys written to ${written.dir}: jwks.json (public), signing/<service>.json and all.json (private, 0600)\n`);
} else if (values.rotate) {
  const dir = values.dir ?? fail("--rotate needs --dir");
  const role = values.rotate;
  const key = generateKey(role, `${Date.now()}`);
  const jwks = read(join(dir, "jwks.json"));
  jwks.keys.push(key.public as KeyFile["keys"][number]);
  // Verifiers first: the new public key is published before anything signs with it.
  write(join(dir, "jwks.json"), jwks, false);
  for (const path of signingFiles(dir)) {
    const file = read(path);
    if (file.keys.some((k) => roleOfKid(k.kid) === role)) {
      file.keys.push(key.private as KeyFile["keys"][number]);
      write(path, file, true);
    }
  }
  process.stdout.write(`${key.public.kid}\n`);
} else if (values.retire) {
  const dir = values.dir ?? fail("--retire needs --dir");
  for (const path of [join(dir, "jwks.json"), ...signingFiles(dir)]) {
    const file = read(path);
    const kept = file.keys.filter((k) => k.kid !== values.retire);
    if (kept.length !== file.keys.length) write(path, { keys: kept }, path !== join(dir, "jwks.json"));
  }
  process.stdout.write(`retired ${values.retire}\n`);
} else {
  fail("what to do?");
}
