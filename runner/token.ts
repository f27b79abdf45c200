// Prints a signed token for operators: `make token` (an operator token, for
// the SERVICE-audience methods such as the dead-letter RPCs and the console),
// or `node runner/token.ts user <user-id>`. Signed with the keys in
// SHOP_SIGNING_KEYS_FILE (the operator's own: <keys>/signing/operator.json),
// else those of a running `make mesh` (.mesh/keys), else the development keys
// `make run` made (.dev-keys). It can only sign what the file holds: a user
// token needs the user-token key, held by the users service alone.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createTokenAuthority, KeyConfigError } from "@shop/platform";

const [kind = "service", subject = "operator"] = process.argv.slice(2);
if (kind !== "user" && kind !== "service") {
  process.stderr.write("usage: node runner/token.ts [service operator | user <user-id>]\n");
  process.exit(2);
}
const env = { ...process.env };
const meshKeys = join(process.env.MESH_DIR ?? ".mesh", "keys");
if (!env.SHOP_JWKS_FILE && !env.SHOP_JWKS && process.env.MESH === "1" && existsSync(join(meshKeys, "jwks.json"))) {
  env.SHOP_JWKS_FILE = join(meshKeys, "jwks.json");
  env.SHOP_SIGNING_KEYS_FILE = join(meshKeys, kind === "user" ? "signing/users.json" : `signing/${subject === "operator" ? "operator" : subject}.json`);
}
try {
  const keysFromEnv = env.SHOP_JWKS_FILE || env.SHOP_JWKS;
  Object.assign(process.env, env);
  const tokens = createTokenAuthority({ allowDevelopmentKeys: !keysFromEnv });
  const token = kind === "user" ? (await tokens.issueUserToken(subject)).token : await tokens.issueServiceToken(subject);
  process.stdout.write(`${token}\n`);
} catch (err) {
  process.stderr.write(`runner/token.ts: ${err instanceof KeyConfigError || err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
