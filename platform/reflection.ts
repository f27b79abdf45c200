// Server reflection, grpc.reflection.v1 and v1alpha, answered from the file
// descriptors protoc-gen-es embeds in gen/. grpcurl list, describe and calls
// then work with no .proto files at hand.
import { create, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescFile, DescService, MessageInitShape, Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
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
  let index: { files: Map<string, DescFile>; registry: Registry; serviceNames: string[] } | undefined;
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
      index = { files, registry: createRegistry(...files.values()), serviceNames: list.map((s) => s.typeName) };
    }
    return index;
  };

  function answer(req: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
    const { files, registry, serviceNames } = getIndex();
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
        out.push(toBinary(FileDescriptorProtoSchema, f.proto));
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
        const symbol = request.value;
        const direct = registry.get(symbol);
        // A method's symbol is "pkg.Service.Method": look up its service.
        const owner = direct ?? registry.getService(symbol.slice(0, symbol.lastIndexOf(".")));
        return owner ? withDeps(owner.file) : notFound(`symbol ${symbol}`);
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
