// Prints a signed token for operators: `make token` (a service token named
// "operator", for the SERVICE-audience methods such as the dead-letter RPCs),
// or `node runner/token.ts user <user-id>`. Uses SHOP_TOKEN_KEY like the shop.
import { createTokenAuthority } from "@shop/platform";

const [kind = "service", subject = "operator"] = process.argv.slice(2);
const tokens = createTokenAuthority();
if (kind === "user") {
  process.stdout.write(`${(await tokens.issueUserToken(subject)).token}\n`);
} else if (kind === "service") {
  process.stdout.write(`${await tokens.issueServiceToken(subject)}\n`);
} else {
  process.stderr.write("usage: node runner/token.ts [service <name> | user <user-id>]\n");
  process.exit(2);
}
