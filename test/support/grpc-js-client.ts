// A @grpc/grpc-js client for any service in gen/, with the protobuf-es codec:
// the second independent client the platform is tested with.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";

export { grpc };

export interface GrpcJsCall {
  /** Unary call; rejects with the grpc-js ServiceError. */
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    input: MessageInitShape<I>,
    options?: { metadata?: Record<string, string>; deadlineMs?: number },
  ): Promise<MessageShape<O>>;
  /** Raw bytes as the request body of a unary call. */
  unaryRaw(path: string, body: Buffer, options?: { metadata?: Record<string, string> }): Promise<Buffer>;
  close(): void;
}

export function createGrpcJsClient(address: string, options: grpc.ChannelOptions = {}): GrpcJsCall {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), options);
  const metadataOf = (m: Record<string, string> | undefined) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(m ?? {})) md.set(k, v);
    return md;
  };
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethod & { input: I; output: O },
      input: MessageInitShape<I>,
      opts: { metadata?: Record<string, string>; deadlineMs?: number } = {},
    ): Promise<MessageShape<O>> {
      const path = `/${method.parent.typeName}/${method.name}`;
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          (value: MessageShape<I>) => Buffer.from(toBinary(method.input, value)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          create(method.input, input) as MessageShape<I>,
          metadataOf(opts.metadata),
          opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs },
          (err, value) => (err ? reject(err) : resolve(value as never)),
        );
      });
    },
    unaryRaw(path, body, opts = {}) {
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          metadataOf(opts.metadata),
          {},
          (err, value) => (err ? reject(err) : resolve(value as Buffer)),
        );
      });
    },
    close: () => client.close(),
  };
}

/** The method descriptor by name, typed loosely for tests. */
export function methodOf(service: DescService, name: string): DescMethod {
  const m = service.methods.find((x) => x.name === name);
  if (!m) throw new Error(`${service.typeName} has no method ${name}`);
  return m;
}
