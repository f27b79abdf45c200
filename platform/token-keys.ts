// The keys tokens are signed and verified with: Ed25519 key pairs, each with a
// `kid` that says what it may sign, so no key can mint more than its role.
//
//   user:<id>               user tokens; only the users service holds the private half
//   operator:<id>           operator tokens (make token, the console); held by whoever operates
//   service:<name>:<id>     the service tokens of <name> (its own outgoing calls), held by <name> only
//
// Every process verifies with the public key set (a JWKS: SHOP_JWKS_FILE, or
// SHOP_JWKS inline) and signs with the private keys it holds (SHOP_SIGNING_KEYS_FILE
// or SHOP_SIGNING_KEYS: {"keys": [<private JWK>, ...]}). Per role the LAST key
// in the signing file signs; every key in the public set verifies. So a
// rotation is: add the new public key everywhere, then append the new private
// key to the signer's file, then once the old key's tokens have expired drop
// both halves of the old one. Files are read again when they change (looked
// at no more than once a second), so none of this needs a restart.
//
// Development keys (make run, SHOP_DEV_KEYS=1) are generated on the machine
// into .dev-keys/ (never committed, no key is in the source) and marked as
// such: a server refuses to listen beyond loopback with them (server.ts).
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { JsonWebKey, KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** "user", "operator" or "service:<name>": what a key may sign. */
export type KeyRole = string;

export interface KeySet {
  /** Public keys by kid. */
  readonly verifying: ReadonlyMap<string, { key: KeyObject; role: KeyRole }>;
  /** The signing key of each role this process holds. */
  readonly signing: ReadonlyMap<KeyRole, { kid: string; key: KeyObject }>;
  /** Generated development keys: loopback only. */
  readonly development: boolean;
  /** Where the keys came from, for messages ("SHOP_JWKS_FILE=/etc/shop/...", ".dev-keys"). */
  readonly origin: string;
  /** Changes whenever the keys are read again (the verified-token cache is dropped then). */
  readonly generation: number;
}

export interface KeySource {
  current(): KeySet;
  /** Reads the files again now if they changed (a verifier meeting an unknown kid). */
  refresh?(): KeySet;
}

const KID = /^(user|operator|service:[a-z][a-z0-9-]*):[A-Za-z0-9._-]+$/;

/** The role a kid names, or undefined when it is not one of ours. */
export function roleOfKid(kid: string): KeyRole | undefined {
  const match = KID.exec(kid);
  return match ? match[1] : undefined;
}

/** The role that signs tokens of this kind and subject. */
export function roleFor(kind: "user" | "service", subject: string): KeyRole {
  if (kind === "user") return "user";
  return subject === "operator" ? "operator" : `service:${subject}`;
}

export class KeyConfigError extends Error {}

interface Jwk extends JsonWebKey {
  kid?: string;
}

function parseKeyList(text: string, what: string): Jwk[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyConfigError(`${what} is not JSON`);
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new KeyConfigError(`${what} must be {"keys": [...]}`);
  return keys as Jwk[];
}

function checkKid(jwk: Jwk, what: string): { kid: string; role: KeyRole } {
  const role = typeof jwk.kid === "string" ? roleOfKid(jwk.kid) : undefined;
  if (!role) throw new KeyConfigError(`${what}: a key has kid ${JSON.stringify(jwk.kid)}; expected user:<id>, operator:<id> or service:<name>:<id>`);
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519") throw new KeyConfigError(`${what}: key ${jwk.kid} is not an Ed25519 key (kty OKP, crv Ed25519)`);
  return { kid: jwk.kid!, role };
}

/** Builds a key set from the texts of a JWKS and a signing-key file. */
export function parseKeySet(jwksText: string, signingText: string | undefined, origin: string, development = false, generation = 0): KeySet {
  const verifying = new Map<string, { key: KeyObject; role: KeyRole }>();
  for (const jwk of parseKeyList(jwksText, "the public key set")) {
    const { kid, role } = checkKid(jwk, "the public key set");
    if (jwk.d !== undefined) throw new KeyConfigError(`the public key set holds the private half of ${kid}: publish public keys only`);
    verifying.set(kid, { key: createPublicKey({ key: jwk, format: "jwk" }), role });
  }
  const signing = new Map<KeyRole, { kid: string; key: KeyObject }>();
  if (signingText !== undefined) {
    for (const jwk of parseKeyList(signingText, "the signing keys")) {
      const { kid, role } = checkKid(jwk, "the signing keys");
      if (jwk.d === undefined) throw new KeyConfigError(`the signing keys: ${kid} has no private half`);
      signing.set(role, { kid, key: createPrivateKey({ key: jwk, format: "jwk" }) });
    }
  }
  return { verifying, signing, development, origin, generation };
}

function readIf(path: string | undefined): string | undefined {
  return path === undefined ? undefined : readFileSync(path, "utf8");
}

/** A key source over files, read again when their modification time changes. */
function fileKeySource(jwksPath: string, signingPath: string | undefined, origin: string, development: boolean): KeySource {
  const stamp = () => [jwksPath, signingPath].map((p) => (p ? statSync(p).mtimeMs : 0)).join("/");
  let seen = stamp();
  let generation = 0;
  let keys = parseKeySet(readFileSync(jwksPath, "utf8"), readIf(signingPath), origin, development, generation);
  let checkedAt = Date.now();
  const source: KeySource = {
    current() {
      if (Date.now() - checkedAt < 1000) return keys;
      return source.refresh!();
    },
    refresh() {
      // Forged tokens with made-up kids must not turn into a stat per call.
      if (Date.now() - checkedAt < 100) return keys;
      checkedAt = Date.now();
      try {
        const next = stamp();
        if (next !== seen) {
          // A half-written file fails to parse: keep the keys we have and look again.
          keys = parseKeySet(readFileSync(jwksPath, "utf8"), readIf(signingPath), origin, development, ++generation);
          seen = next;
        }
      } catch {
        // Files being replaced: the previous keys stay until the new ones read whole.
      }
      return keys;
    },
  };
  return source;
}

/** The keys the environment configures, or undefined when it configures none. */
export function keySourceFromEnv(env: NodeJS.ProcessEnv = process.env): KeySource | undefined {
  if (env.SHOP_JWKS_FILE) {
    return fileKeySource(env.SHOP_JWKS_FILE, env.SHOP_SIGNING_KEYS_FILE, `SHOP_JWKS_FILE=${env.SHOP_JWKS_FILE}`, false);
  }
  if (env.SHOP_JWKS) {
    const keys = parseKeySet(env.SHOP_JWKS, env.SHOP_SIGNING_KEYS ?? readIf(env.SHOP_SIGNING_KEYS_FILE), "SHOP_JWKS");
    return { current: () => keys };
  }
  if (env.SHOP_SIGNING_KEYS || env.SHOP_SIGNING_KEYS_FILE) {
    throw new KeyConfigError("signing keys are set but no public key set: set SHOP_JWKS_FILE (or SHOP_JWKS) too");
  }
  return undefined;
}

/** One new key pair for a role, as a private and a public JWK. */
export function generateKey(role: KeyRole, id = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "")): { private: Jwk; public: Jwk } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const kid = `${role}:${id}`;
  if (roleOfKid(kid) !== role) throw new KeyConfigError(`cannot make a key for role ${role}`);
  return {
    private: { ...privateKey.export({ format: "jwk" }), kid, alg: "EdDSA", use: "sig" } as Jwk,
    public: { ...publicKey.export({ format: "jwk" }), kid, alg: "EdDSA", use: "sig" } as Jwk,
  };
}

/** The roles of a shop: user tokens, operators, and each service's own. */
export function shopRoles(services: readonly string[]): KeyRole[] {
  return ["user", "operator", ...services.map((s) => `service:${s}`)];
}

export interface WrittenKeys {
  readonly dir: string;
  /** The public set. */
  readonly jwksFile: string;
  /** Every private key (one process hosting everything: make run). */
  readonly allFile: string;
  /** The signing file of each holder: each service (users also holds the user key) and "operator". */
  readonly signingFiles: ReadonlyMap<string, string>;
}

/**
 * Writes {"keys": list} to path whole: beside it first, then renamed over it,
 * so a process reading the keys again sees the old file or the new, never
 * half of one. Private files are 0600.
 */
export function writeKeyFile(path: string, list: readonly object[], secret: boolean): void {
  const mode = secret ? 0o600 : 0o644;
  writeFileSync(`${path}.new`, `${JSON.stringify({ keys: list }, null, 2)}\n`, { mode });
  chmodSync(`${path}.new`, mode);
  renameSync(`${path}.new`, path);
}

/**
 * Writes a complete key set into dir: jwks.json, signing/<holder>.json per
 * holder (0600), all.json. The layout runner/keys.ts, make mesh and the chart
 * use.
 */
export function writeKeyDir(dir: string, services: readonly string[]): WrittenKeys {
  mkdirSync(join(dir, "signing"), { recursive: true, mode: 0o700 });
  const keys = new Map(shopRoles(services).map((role) => [role, generateKey(role)] as const));
  const write = (path: string, list: Jwk[], secret: boolean) => {
    writeKeyFile(path, list, secret);
    return path;
  };
  const jwksFile = write(join(dir, "jwks.json"), [...keys.values()].map((k) => k.public), false);
  const allFile = write(join(dir, "all.json"), [...keys.values()].map((k) => k.private), true);
  const signingFiles = new Map<string, string>();
  for (const service of services) {
    const held = [keys.get(`service:${service}`)!.private, ...(service === "users" ? [keys.get("user")!.private] : [])];
    signingFiles.set(service, write(join(dir, "signing", `${service}.json`), held, true));
  }
  signingFiles.set("operator", write(join(dir, "signing", "operator.json"), [keys.get("operator")!.private], true));
  return { dir, jwksFile, allFile, signingFiles };
}

/**
 * The machine's development keys: every role, in .dev-keys/ (DEV_KEYS_DIR),
 * generated on first use. Loopback only (server.ts refuses otherwise).
 */
export function developmentKeySource(services: readonly string[], env: NodeJS.ProcessEnv = process.env): KeySource {
  const dir = resolve(env.DEV_KEYS_DIR ?? ".dev-keys");
  const jwks = join(dir, "jwks.json");
  const all = join(dir, "all.json");
  try {
    const have = existsSync(jwks) && existsSync(all) ? parseKeySet(readFileSync(jwks, "utf8"), readFileSync(all, "utf8"), dir, true) : undefined;
    const missing = shopRoles(services).filter((r) => !have?.signing.has(r));
    if (missing.length > 0) writeKeyDir(dir, services);
    return fileKeySource(jwks, all, `development keys in ${dir}`, true);
  } catch (err) {
    if (err instanceof KeyConfigError) throw err;
    // A read-only filesystem (an image run with SHOP_DEV_KEYS=1): keys for this process only.
    const keys = new Map(shopRoles(services).map((role) => [role, generateKey(role)] as const));
    const set = parseKeySet(
      JSON.stringify({ keys: [...keys.values()].map((k) => k.public) }),
      JSON.stringify({ keys: [...keys.values()].map((k) => k.private) }),
      "development keys in memory",
      true,
    );
    return { current: () => set };
  }
}

/** What to tell someone who configured no keys. */
export const KEYS_HOWTO =
  "set SHOP_JWKS_FILE (the public key set) and SHOP_SIGNING_KEYS_FILE (this process's private keys); " +
  "`node runner/keys.ts --out <dir>` creates a complete set. For a local run only, SHOP_DEV_KEYS=1 uses development keys (loopback only)";
