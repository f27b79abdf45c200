// The contracts as buf compiled them, comments included: gen/descriptors.binpb,
// a google.protobuf.FileDescriptorSet of proto/ and everything it imports,
// with source code info. `make generate` writes it (buf build) and
// `make checkgenerate` fails when it is stale, like the rest of gen/. The
// descriptors protoc-gen-es embeds in gen/*_pb.js carry no comments, so
// whatever shows the contracts' documentation (reflection, the OpenAPI
// documents) reads them from here. Read once, on first use; a missing or
// unreadable file throws, naming the file and how to make it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { FileDescriptorProto, FileDescriptorSet } from "@bufbuild/protobuf/wkt";

/** Where `make generate` writes the set. */
export const DOCUMENTED_DESCRIPTORS_PATH = fileURLToPath(new URL("../gen/descriptors.binpb", import.meta.url));

let set: FileDescriptorSet | undefined;
let byName: Map<string, FileDescriptorProto> | undefined;

/**
 * The decoded set, files in dependency order (each after what it imports),
 * each with its source_code_info. The same object on every call: do not
 * modify it.
 */
export function documentedFileSet(): FileDescriptorSet {
  if (!set) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(DOCUMENTED_DESCRIPTORS_PATH);
    } catch (err) {
      throw new Error(`cannot read ${DOCUMENTED_DESCRIPTORS_PATH} (${(err as Error).message}): run 'make generate'`);
    }
    set = fromBinary(FileDescriptorSetSchema, bytes);
  }
  return set;
}

/** One file of the set by its proto path, for example "shop/payments/v1/payments.proto"; undefined when the set has no such file. */
export function documentedFile(name: string): FileDescriptorProto | undefined {
  byName ??= new Map(documentedFileSet().file.map((f) => [f.name, f]));
  return byName.get(name);
}
