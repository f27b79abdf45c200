// The interop schema (grpc.testing and ORCA) as a registry, from the
// descriptor set tools/bin/grpc-interop-descriptors writes out of grpc-go's
// own grpc_testing package: grpc-go ships those protos only as Go code, and
// this repository keeps no copy of them.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import type { FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { repoRoot } from "../support/process.ts";

export const descriptorTool = join(repoRoot, "tools/bin/grpc-interop-descriptors");
export const interopClient = join(repoRoot, "tools/bin/grpc-interop-client");

/** The descriptor set's bytes: the file at path, else what the descriptor tool prints. */
export function interopDescriptorBytes(path?: string): Uint8Array {
  if (path) return readFileSync(path);
  if (!existsSync(descriptorTool)) throw new Error(`${descriptorTool} not found: run 'make tools/bin/grpc-interop-client'`);
  return execFileSync(descriptorTool, { maxBuffer: 16 * 1024 * 1024, timeout: 10_000 });
}

export function loadInteropRegistry(path?: string): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, interopDescriptorBytes(path)));
}
