// Server reflection, grpc.reflection.v1 and v1alpha. grpcurl list, describe
// and calls work with no .proto files at hand, and describe shows the
// contracts' comments: every file answers with its documented descriptor from
// gen/descriptors.binpb (platform/documented-descriptors.ts), source code info
// included. Files that set lacks (the health and reflection protos, read from
// npm packages at generate time) answer with the descriptor protoc-gen-es
// embeds in gen/, which has no comments.
import { create, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescFile, DescMessage, DescService, MessageInitShape, Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { documentedFile } from "./documented-descriptors.ts";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ReflectionV1, ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";
import type { ServerReflectionRequest, ServerReflectionResponse } from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ReflectionV1Alpha,
  ServerReflectionRequestSchema as AlphaRequestSchema,
  ServerReflectionResponseSchema as AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { ServerReflectionResponse as AlphaResponse } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

export interface ReflectionImpls {
  v1: ServiceImpl<typeof ReflectionV1>;
  v1alpha: ServiceImpl<typeof ReflectionV1Alpha>;
}

export { ReflectionV1, ReflectionV1Alpha };

const NOT_FOUND = 5;

/** services: what the server serves; listed by list_services, with their files and imports. */
export function createReflection(services: () => DescService[]): ReflectionImpls {
  let index: { files: Map<string, DescFile>; registry: Registry; symbols: Map<string, DescFile>; serviceNames: string[] } | undefined;
  // The serialized descriptor of each file, made once: the documented one when there is one.
  const encoded = new Map<string, Uint8Array>();
  const bytesOf = (file: DescFile) => {
    let bytes = encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, documentedFile(file.proto.name) ?? file.proto);
      encoded.set(file.proto.name, bytes);
    }
    return bytes;
  };
  const getIndex = () => {
    if (!index) {
      const files = new Map<string, DescFile>();
      const visit = (file: DescFile) => {
        if (files.has(file.proto.name)) return;
        files.set(file.proto.name, file);
        for (const dep of file.dependencies) visit(dep);
      };
      const list = services();
      for (const s of list) visit(s.file);
      index = { files, registry: createRegistry(...files.values()), symbols: symbolsOf(files.values()), serviceNames: list.map((s) => s.typeName) };
    }
    return index;
  };

  function answer(req: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
    const { files, registry, symbols, serviceNames } = getIndex();
    const respond = (messageResponse: MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]) =>
      create(ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse });
    const notFound = (what: string) =>
      respond({ case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } });
    const withDeps = (file: DescFile) => {
      // The file first, then whatever it imports that this stream has not had yet.
      const out: Uint8Array[] = [];
      const add = (f: DescFile, always: boolean) => {
        if (!always && sent.has(f.proto.name)) return;
        sent.add(f.proto.name);
        out.push(bytesOf(f));
        for (const dep of f.dependencies) add(dep, false);
      };
      add(file, true);
      return respond({ case: "fileDescriptorResponse", value: { fileDescriptorProto: out } });
    };

    const request = req.messageRequest;
    switch (request.case) {
      case "listServices":
        return respond({ case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } });
      case "fileByFilename": {
        const file = files.get(request.value);
        return file ? withDeps(file) : notFound(`file ${request.value}`);
      }
      case "fileContainingSymbol": {
        const file = symbols.get(request.value);
        return file ? withDeps(file) : notFound(`symbol ${request.value}`);
      }
      case "fileContainingExtension": {
        const extendee = registry.getMessage(request.value.containingType);
        const ext = extendee && registry.getExtensionFor(extendee, request.value.extensionNumber);
        return ext ? withDeps(ext.file) : notFound(`extension ${request.value.extensionNumber} of ${request.value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const extendee = registry.getMessage(request.value);
        if (!extendee) return notFound(`type ${request.value}`);
        const numbers: number[] = [];
        for (const type of registry) {
          if (type.kind === "extension" && type.extendee.typeName === extendee.typeName) numbers.push(type.number);
        }
        return respond({ case: "allExtensionNumbersResponse", value: { baseTypeName: extendee.typeName, extensionNumber: numbers } });
      }
      default:
        return respond({ case: "errorResponse", value: { errorCode: 3, errorMessage: "empty reflection request" } });
    }
  }

  return {
    v1: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) yield answer(req, sent);
      },
    },
    // v1alpha has the same wire format as v1: translate through bytes.
    v1alpha: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) {
          const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(AlphaRequestSchema, req));
          const response = answer(v1, sent);
          yield fromBinary(AlphaResponseSchema, toBinary(ServerReflectionResponseSchema, response)) as AlphaResponse;
        }
      },
    },
  };
}

/**
 * Every fully-qualified name the files define, as protoc scopes them:
 * messages, fields, oneofs, enums, enum values (beside their enum, and
 * also inside it), extensions, services and methods. grpcurl describe asks
 * for any of them.
 */
function symbolsOf(files: Iterable<DescFile>): Map<string, DescFile> {
  const symbols = new Map<string, DescFile>();
  for (const file of files) {
    const add = (name: string) => symbols.set(name, file);
    const scope = (parent: string, name: string) => (parent === "" ? name : `${parent}.${name}`);
    const addEnum = (e: DescEnum) => {
      add(e.typeName);
      const parent = e.parent?.typeName ?? file.proto.package;
      for (const value of e.values) {
        add(scope(parent, value.name));
        // Also the name people write (and grpcurl passes on as written).
        add(`${e.typeName}.${value.name}`);
      }
    };
    const addMessage = (m: DescMessage) => {
      add(m.typeName);
      for (const field of m.fields) add(`${m.typeName}.${field.name}`);
      for (const oneof of m.oneofs) add(`${m.typeName}.${oneof.name}`);
      for (const ext of m.nestedExtensions) add(ext.typeName);
      m.nestedEnums.forEach(addEnum);
      m.nestedMessages.forEach(addMessage);
    };
    file.messages.forEach(addMessage);
    file.enums.forEach(addEnum);
    for (const ext of file.extensions) add(ext.typeName);
    for (const service of file.services) {
      add(service.typeName);
      for (const method of service.methods) add(`${service.typeName}.${method.name}`);
    }
  }
  return symbols;
}
