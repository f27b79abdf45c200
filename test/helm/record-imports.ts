// Preloaded with `node --import ./test/helm/record-imports.ts`: writes every
// file the process loaded as a module (import or require, ours and
// node_modules') to the JSON file SHOP_RECORD_IMPORTS names, when it exits.
// image.test.ts checks that the Dockerfile ships all of them.
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    if (url.startsWith("file:")) loaded.add(url);
    return nextLoad(url, context);
  },
});
const out = process.env.SHOP_RECORD_IMPORTS;
if (out) process.on("exit", () => writeFileSync(out, JSON.stringify([...loaded])));
