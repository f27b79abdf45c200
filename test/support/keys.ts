// Token keys for the test run: one complete Ed25519 set made when this module
// loads, put into process.env (SHOP_JWKS, SHOP_SIGNING_KEYS) so that every
// server a test starts, in process or as a child, verifies and signs with it,
// and authorities over it for the tests that mint tokens. A set of its own per
// run: nothing here is a key anyone else knows. A test that needs a process
// without keys passes SHOP_JWKS: "" (and SHOP_SIGNING_KEYS: "") in its env.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createTokenAuthority, loadTopology } from "@shop/platform";
import type { KeySource, TokenAuthority } from "@shop/platform";
import { generateKey, parseKeySet, shopRoles } from "../../platform/token-keys.ts";

/** Every role the suite signs for: the shop's, the edge backend's, the echo fixture's and the in-process tests' callers. */
const roles = shopRoles([...Object.keys(loadTopology().services), "edge-backend", "echo", "tester", "local", "front", "rogue"]);

export interface KeyMaterial {
  readonly jwks: string;
  readonly signing: string;
  readonly source: KeySource;
}

/** A fresh complete key set, as the JSON texts of its two halves. */
export function createKeyMaterial(): KeyMaterial {
  const pairs = roles.map((role) => generateKey(role, "test"));
  const jwks = JSON.stringify({ keys: pairs.map((p) => p.public) });
  const signing = JSON.stringify({ keys: pairs.map((p) => p.private) });
  const set = parseKeySet(jwks, signing, "test keys");
  return { jwks, signing, source: { current: () => set } };
}

export const testKeys = createKeyMaterial();

/** The environment that gives a process the suite's keys. */
export function testKeyEnv(): Record<string, string> {
  return { SHOP_JWKS: testKeys.jwks, SHOP_SIGNING_KEYS: testKeys.signing };
}

if (!process.env.SHOP_JWKS && !process.env.SHOP_JWKS_FILE) Object.assign(process.env, testKeyEnv());

/** An authority over the suite's keys. */
export function testAuthority(options: { userTokenTtlSeconds?: number; issuer?: string } = {}): TokenAuthority {
  return createTokenAuthority({ keys: testKeys.source, ...options });
}

/** An authority over keys nobody trusts: its tokens are forgeries. */
export function strangerAuthority(): TokenAuthority {
  return createTokenAuthority({ keys: createKeyMaterial().source });
}

/** An authority over a key folder written by writeKeyDir (make mesh's <mesh dir>/keys). */
export function authorityFromKeyDir(dir: string): TokenAuthority {
  const set = parseKeySet(readFileSync(join(dir, "jwks.json"), "utf8"), readFileSync(join(dir, "all.json"), "utf8"), dir);
  return createTokenAuthority({ keys: { current: () => set } });
}
