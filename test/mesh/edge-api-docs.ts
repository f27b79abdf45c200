// The API documentation as the mesh's edge serves it (a suite to run on a
// running mesh, like edge-web-console.ts): /openapi.json, /api and /api.css
// come from the edge backend's web-app module with the security headers, the
// document is the one `make run` serves, and the page's curl examples, run
// as printed against the edge, answer what the page says they answer.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { expect } from "chai";
import { loadEdgeApiDocument } from "../../runner/api-reference.ts";
import type { Json, OpenApiDocument } from "../../runner/openapi.ts";
import { SECURITY_HEADERS } from "../../runner/security-headers.ts";
import { authorityFromKeyDir } from "../support/keys.ts";
import type { LocalMesh } from "./local-mesh.ts";

function run(command: string, env: Record<string, string | undefined>): Promise<string> {
  return new Promise((resolve) => execFile("bash", ["-c", command], { env: { ...process.env, ...env }, timeout: 20_000 }, (_err, stdout) => resolve(stdout)));
}

const unescapeHtml = (s: string) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");

export function edgeApiDocsSuite(getMesh: () => LocalMesh): void {
  describe("the API documentation through the edge (runner/api-reference.ts in the edge backend)", function () {
    this.timeout(120_000);

    it("serves /openapi.json (the same document make run serves), /api and /api.css with the security headers", async function () {
      const mesh = getMesh();
      for (const path of ["/openapi.json", "/api", "/api.css"]) {
        const res = await fetch(`${mesh.edgeUrl}${path}`);
        expect(res.status, path).to.equal(200);
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name), `${path} ${name}`).to.equal(value);
        if (path === "/openapi.json") expect(await res.json()).to.deep.equal(JSON.parse(JSON.stringify(await loadEdgeApiDocument())));
      }
    });

    it("answers every curl example of the page, run as printed against the edge, as the page says", async function () {
      const mesh = getMesh();
      const doc = (await (await fetch(`${mesh.edgeUrl}/openapi.json`)).json()) as OpenApiDocument;
      const html = await (await fetch(`${mesh.edgeUrl}/api`)).text();
      const examples = [...html.matchAll(/<pre class="example"><code>([\s\S]*?)<\/code><\/pre>/g)].map((m) => unescapeHtml(m[1]));
      const operator = await authorityFromKeyDir(join(mesh.dir, "keys")).issueServiceToken("operator");
      const loginLine = examples.find((e) => e.startsWith("TOKEN=$("))!;
      let user: string | undefined;
      const outcomes: string[] = [];
      for (const command of examples.filter((e) => e.startsWith("curl "))) {
        expect(command, `examples name the edge: ${command}`).to.include(mesh.edgeUrl);
        const path = new URL(command.split(" ").pop()!).pathname;
        const op = doc.paths[path].post;
        if (op["x-shop-audience"] === "user") user ??= await run(`${loginLine}; printf %s "$TOKEN"`, {});
        const token = op["x-shop-audience"] === "service" ? operator : user;
        const body = JSON.parse(await run(command, { TOKEN: token })) as Json;
        const expected = op["x-shop-example"]?.answers ?? "ok";
        const got = typeof body.code === "string" ? body.code : "ok";
        if (got !== expected) outcomes.push(`${path}: expected ${expected}, got ${JSON.stringify(body)}`);
      }
      expect(outcomes).to.deep.equal([]);
    });
  });
}
