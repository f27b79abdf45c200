// gen/descriptors.binpb describes exactly the contracts the generated code
// embeds (every proto/ file, the same definitions), plus their comments.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { clearField, clone, equals } from "@bufbuild/protobuf";
import type { DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { repoRoot } from "../test/support/process.ts";
import { documentedFile, documentedFileSet } from "./documented-descriptors.ts";

/** Every file descriptor gen/**\/*_pb.js exports, and what they import, by name. */
async function embeddedFiles(): Promise<Map<string, DescFile>> {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(visit);
  };
  const gen = join(repoRoot, "gen");
  for (const entry of readdirSync(gen, { recursive: true, encoding: "utf8" })) {
    if (!entry.endsWith("_pb.js")) continue;
    const module = (await import(pathToFileURL(join(gen, entry)).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "file") visit(value as DescFile);
    }
  }
  return files;
}

/** The file without its comments, as the generated code's DescFile.proto has it (json_name restored at load). */
function withoutSourceInfo(file: FileDescriptorProto): FileDescriptorProto {
  const copy = clone(FileDescriptorProtoSchema, file);
  clearField(copy, FileDescriptorProtoSchema.field.sourceCodeInfo);
  return copy;
}

const ours = (name: string) => name.startsWith("shop/") || name.startsWith("mesh/");

describe("documented descriptors (gen/descriptors.binpb)", function () {
  it("holds every proto/ file the generated code embeds, and nothing else of ours", async function () {
    const embedded = [...(await embeddedFiles()).keys()].filter(ours).sort();
    const documented = documentedFileSet().file.map((f) => f.name).filter(ours).sort();
    expect(documented).to.deep.equal(embedded);
    expect(documented).to.include("shop/payments/v1/payments.proto");
  });

  it("defines in each file exactly what the generated code embeds, so reflection never serves another contract", async function () {
    for (const [name, file] of await embeddedFiles()) {
      if (!ours(name)) continue;
      const documented = documentedFile(name);
      expect(documented, name).to.not.equal(undefined);
      const same = equals(FileDescriptorProtoSchema, withoutSourceInfo(documented!), file.proto);
      expect(same, `${name} differs from gen/${name.replace(/\.proto$/, "_pb.js")}: run 'make generate'`).to.equal(true);
    }
  });

  it("keeps the contracts' comments: a service's, a method's and a field's", function () {
    const payments = documentedFile("shop/payments/v1/payments.proto")!;
    const comments = payments.sourceCodeInfo?.location.map((l) => l.leadingComments) ?? [];
    expect(comments.join("\n"))
      .to.include("Authorize, capture, void and refund, for the services of the order saga.")
      .and.to.include("Reserves the amount on the payment method.")
      .and.to.include("A test payment method token of the simulated provider");
  });

  it("lists each file after the files it imports, so the set loads in one pass", function () {
    const seen = new Set<string>();
    for (const file of documentedFileSet().file) {
      for (const dep of file.dependency) expect(seen.has(dep), `${file.name} imports ${dep}`).to.equal(true);
      seen.add(file.name);
    }
  });
});
