// The connectrpc conformance protos, loaded at run time. gen/ is generated
// from proto/ only and third-party protos are never copied into the repo, so
// the descriptors come from the suite's own Go module (the version the
// Makefile installs connectconformance at), compiled by buf into an image.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescService, FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

export const CONFORMANCE_MODULE = "connectrpc.com/conformance";
export const CONFORMANCE_VERSION = "v1.0.7";
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/** Set by the test: an image built once, so every server process does not run buf. */
export const IMAGE_ENV = "CONFORMANCE_IMAGE";

/** The module's directory in the Go module cache (downloaded through the Go proxy if absent). */
export function conformanceModuleDir(): string {
  const out = execFileSync("go", ["mod", "download", "-json", `${CONFORMANCE_MODULE}@${CONFORMANCE_VERSION}`], {
    encoding: "utf8",
    // Outside any module: no go.mod here decides anything.
    cwd: tmpdir(),
    env: { ...process.env, GOFLAGS: "-mod=mod" },
    timeout: 120_000,
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir || !existsSync(join(info.Dir, "proto"))) {
    throw new Error(`go mod download ${CONFORMANCE_MODULE}@${CONFORMANCE_VERSION}: ${info.Error ?? "no proto directory"}`);
  }
  return info.Dir;
}

/** Compiles the module's protos (with the well-known types they import) into a binary image. */
export function buildConformanceImage(outPath: string): void {
  const dir = conformanceModuleDir();
  // The module root carries its own buf.yaml (module path "proto").
  execFileSync(join(repoRoot, "node_modules/.bin/buf"), ["build", dir, "-o", outPath], {
    stdio: ["ignore", "ignore", "inherit"],
    timeout: 120_000,
  });
}

export interface ConformanceProtos {
  readonly registry: FileRegistry;
  readonly service: DescService;
  message(name: string): DescMessage;
}

export function loadConformanceProtos(): ConformanceProtos {
  let bytes: Uint8Array;
  const prebuilt = process.env[IMAGE_ENV];
  if (prebuilt) {
    bytes = readFileSync(prebuilt);
  } else {
    const dir = mkdtempSync(join(tmpdir(), "conformance-image-"));
    try {
      const path = join(dir, "image.binpb");
      buildConformanceImage(path);
      bytes = readFileSync(path);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const service = registry.getService("connectrpc.conformance.v1.ConformanceService");
  if (!service) throw new Error("connectrpc.conformance.v1.ConformanceService is not in the image");
  return {
    registry,
    service,
    message(name) {
      const desc = registry.getMessage(`connectrpc.conformance.v1.${name}`);
      if (!desc) throw new Error(`connectrpc.conformance.v1.${name} is not in the image`);
      return desc;
    },
  };
}
