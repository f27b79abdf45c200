// Generated Connect clients for a server under test, over every protocol the
// platform serves on its one port: the first of the three independent clients
// the platform is tested with (grpc-js and grpcurl are the others).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";

export { Code, ConnectError };

export interface Protocol {
  /** What a test title says about it: "Connect JSON over HTTP/1.1". */
  readonly name: string;
  transport(baseUrl: string): Transport;
}

/** gRPC over h2c: what services, Envoy and grpcurl speak. */
export function grpcTransport(baseUrl: string): Transport {
  return createGrpcTransport({ baseUrl });
}

/**
 * Every protocol the server answers on one port: gRPC over h2c, Connect JSON
 * and binary over HTTP/1.1 (browsers, curl) and over h2c, and gRPC-Web over
 * HTTP/1.1 (browsers).
 */
export const everyProtocol: readonly Protocol[] = [
  { name: "gRPC over h2c", transport: grpcTransport },
  { name: "Connect JSON over HTTP/1.1", transport: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }) },
  { name: "Connect binary over HTTP/1.1", transport: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }) },
  { name: "Connect JSON over h2c", transport: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false }) },
  { name: "gRPC-Web over HTTP/1.1", transport: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }) },
];

/** A generated client on gRPC over h2c. */
export function grpcClient<S extends DescService>(service: S, baseUrl: string): Client<S> {
  return createClient(service, grpcTransport(baseUrl));
}

/** The ConnectError a call failed with; throws when the call succeeded. */
export async function failureOf(call: Promise<unknown> | AsyncIterable<unknown>): Promise<ConnectError> {
  try {
    if (Symbol.asyncIterator in call) {
      for await (const _ of call) {
        // Drain the stream: the status arrives at its end.
      }
    } else {
      await call;
    }
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Collects a server stream into an array. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}
