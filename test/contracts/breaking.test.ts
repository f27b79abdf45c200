// `make breaking` (scripts/breaking.sh) picks the baseline it promises and
// buf's FILE rules catch what breaks a Connect JSON client: run on throwaway
// git repositories with a one-service module, committed, tagged, branched
// and cloned as a real one is (the real git and the project's buf).
// Cases: the last release tag (and the one before when HEAD is the tag),
// the merge base with main, the previous commit as the last resort on main,
// one commit with nothing to compare, uncommitted changes, a fresh clone (as
// CI has it), a shallow clone refused, and the README's v1 -> v2 versioning:
// v2 beside v1 passes, removing v1 fails until buf.yaml ignores it.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect } from "chai";
import { repoRoot } from "../support/process.ts";

const script = join(repoRoot, "scripts/breaking.sh");
const env = {
  ...process.env,
  PATH: `${join(repoRoot, "node_modules/.bin")}:${process.env.PATH}`,
  GIT_AUTHOR_NAME: "test",
  GIT_AUTHOR_EMAIL: "test@example.com",
  GIT_COMMITTER_NAME: "test",
  GIT_COMMITTER_EMAIL: "test@example.com",
  GIT_CONFIG_NOSYSTEM: "1",
  BREAKING_AGAINST: "",
};

function sh(cwd: string, file: string, args: string[], extra: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: { ...env, ...extra }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

const BUF_YAML = `version: v2
modules:
  - path: proto
breaking:
  use:
    - FILE
`;

/** The contract of a tiny service, with what a case changes. */
function proto(options: { version?: string; fieldName?: string; extraField?: boolean; withCancel?: boolean } = {}): string {
  const v = options.version ?? "v1";
  return `syntax = "proto3";
package shop.widgets.${v};
service WidgetService {
  rpc GetWidget(GetWidgetRequest) returns (GetWidgetResponse);
${options.withCancel === false ? "" : "  rpc CancelWidget(GetWidgetRequest) returns (GetWidgetResponse);\n"}}
message GetWidgetRequest { string ${options.fieldName ?? "widget_id"} = 1;${options.extraField ? " string note = 2;" : ""} }
message GetWidgetResponse {}
`;
}

class Repo {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  write(path: string, text: string): void {
    mkdirSync(dirname(join(this.dir, path)), { recursive: true });
    writeFileSync(join(this.dir, path), text);
  }
  remove(path: string): void {
    rmSync(join(this.dir, path), { recursive: true, force: true });
  }
  async git(...args: string[]): Promise<string> {
    const { code, out } = await sh(this.dir, "git", args);
    if (code !== 0) throw new Error(`git ${args.join(" ")}: ${out}`);
    return out.trim();
  }
  async commit(message: string): Promise<void> {
    await this.git("add", "-A");
    await this.git("commit", "-q", "--allow-empty", "-m", message);
  }
  breaking(extra: Record<string, string> = {}) {
    return sh(this.dir, "bash", [script], extra);
  }
}

describe("make breaking: buf breaking against what was released (scripts/breaking.sh)", function () {
  this.timeout(120_000);
  let root: string;

  before(function () {
    root = mkdtempSync(join(tmpdir(), "shop-breaking-"));
  });
  after(function () {
    rmSync(root, { recursive: true, force: true });
  });

  let n = 0;
  async function repo(): Promise<Repo> {
    const r = new Repo(join(root, `repo-${++n}`));
    mkdirSync(r.dir);
    await r.git("init", "-q", "-b", "main");
    r.write("buf.yaml", BUF_YAML);
    r.write("proto/shop/widgets/v1/widgets.proto", proto());
    await r.commit("one");
    return r;
  }

  it("is what the Makefile's breaking target runs", async function () {
    const { out } = await sh(repoRoot, "make", ["-n", "breaking"]);
    expect(out).to.include("scripts/breaking.sh");
  });

  it("passes, saying so, on a repository of one commit with no tag: nothing to compare against", async function () {
    const r = await repo();
    const { code, out } = await r.breaking();
    expect(code, out).to.equal(0);
    expect(out).to.include("nothing to compare against");
  });

  it("on main without a release compares with the previous commit only, and says it is the last resort; a renamed field (its JSON name) fails", async function () {
    const r = await repo();
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ fieldName: "id" }));
    await r.commit("rename a field");
    const { code, out } = await r.breaking();
    expect(code, out).to.not.equal(0);
    expect(out).to.include("the previous commit only (last resort");
    expect(out).to.match(/json_name|JSON name|name from "widget_id" to "id"/i);
  });

  it("judges uncommitted changes too", async function () {
    const r = await repo();
    await r.commit("two");
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ withCancel: false }));
    const { code, out } = await r.breaking();
    expect(code, out).to.not.equal(0);
    expect(out).to.include('"CancelWidget" on service "WidgetService" was deleted');
  });

  it("gates against the last release tag, not the previous commit: a method deleted since v1.0.0 fails though the last commit only added a field", async function () {
    const r = await repo();
    await r.git("tag", "v1.0.0");
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ withCancel: false }));
    await r.commit("drop CancelWidget");
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ withCancel: false, extraField: true }));
    await r.commit("add a field");
    // A tag that is no release (no digit after v) is not one.
    await r.git("tag", "vnext");
    const { code, out } = await r.breaking();
    expect(code, out).to.not.equal(0);
    expect(out).to.include("the last release tag v1.0.0");
    expect(out).to.include("CancelWidget");
    // HEAD tagged as the next release: the gate is still the release before it.
    await r.git("tag", "v1.1.0");
    const tagged = await r.breaking();
    expect(tagged.code, tagged.out).to.not.equal(0);
    expect(tagged.out).to.include("the last release tag v1.0.0");
    // Once v1.1.0 is released, the next commit is judged against it.
    await r.commit("after the release");
    const after = await r.breaking();
    expect(after.code, after.out).to.equal(0);
    expect(after.out).to.include("the last release tag v1.1.0");
    // BREAKING_AGAINST overrides the choice.
    const forced = await r.breaking({ BREAKING_AGAINST: "v1.0.0" });
    expect(forced.code).to.not.equal(0);
    expect(forced.out).to.include("BREAKING_AGAINST=v1.0.0");
  });

  it("on a branch without a release compares with the merge base with main, however many commits the branch has", async function () {
    const r = await repo();
    await r.git("checkout", "-q", "-b", "feature");
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ fieldName: "id" }));
    await r.commit("rename");
    await r.commit("another commit, no proto change");
    const { code, out } = await r.breaking();
    expect(code, out).to.not.equal(0);
    expect(out).to.include("the merge base with main");
  });

  it("works from a fresh clone as CI has it (tags, main's history, origin/main), and refuses a shallow one", async function () {
    const r = await repo();
    await r.git("tag", "v0.1.0");
    r.write("proto/shop/widgets/v1/widgets.proto", proto({ extraField: true }));
    await r.commit("add a field");
    const clone = new Repo(join(root, `clone-${++n}`));
    await sh(root, "git", ["clone", "-q", r.dir, clone.dir]);
    const fresh = await clone.breaking();
    expect(fresh.code, fresh.out).to.equal(0);
    expect(fresh.out).to.include("the last release tag v0.1.0");
    // Without tags, on main: HEAD is the merge base with origin/main, so the previous commit.
    const untagged = new Repo(join(root, `clone-${++n}`));
    await sh(root, "git", ["clone", "-q", "--no-tags", r.dir, untagged.dir]);
    expect((await untagged.breaking()).out).to.include("the previous commit only");
    const shallow = new Repo(join(root, `clone-${++n}`));
    await sh(root, "git", ["clone", "-q", "--depth", "1", `file://${r.dir}`, shallow.dir]);
    const refused = await shallow.breaking();
    expect(refused.code).to.not.equal(0);
    expect(refused.out).to.include("shallow clone");
  });

  it("lets a v2 package stand beside v1, and fails removing v1 until buf.yaml's breaking.ignore names it (README: Versioning a contract)", async function () {
    const r = await repo();
    await r.git("tag", "v1.0.0");
    r.write("proto/shop/widgets/v2/widgets.proto", proto({ version: "v2", fieldName: "id" }));
    await r.commit("widgets v2 beside v1");
    const beside = await r.breaking();
    expect(beside.code, beside.out).to.equal(0);
    await r.git("tag", "v1.1.0");
    r.remove("proto/shop/widgets/v1");
    await r.commit("remove widgets v1");
    const removed = await r.breaking();
    expect(removed.code).to.not.equal(0);
    expect(removed.out).to.include('Previously present file "shop/widgets/v1/widgets.proto" was deleted');
    r.write("buf.yaml", `${BUF_YAML}  ignore:\n    - proto/shop/widgets/v1\n`);
    const ignored = await r.breaking();
    expect(ignored.code, ignored.out).to.equal(0);
  });
});
