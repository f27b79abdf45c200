// The server-under-test side of connectconformance's protocol
// (docs/testing_servers.md): one size-delimited ServerCompatRequest on stdin
// (a 4-byte big-endian length, then the message), one size-delimited
// ServerCompatResponse on stdout once the server listens, then serve until
// SIGTERM. stdout carries nothing else: logs go to stderr.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConformanceProtos } from "./conformance-protos.ts";

// connectrpc.conformance.v1 enum values (config.proto).
export const HTTP_VERSION_1 = 1;
export const HTTP_VERSION_2 = 2;

export interface ServerCompatRequest {
  protocol: number;
  httpVersion: number;
  useTls: boolean;
  clientTlsCert: Uint8Array;
  messageReceiveLimit: number;
}

export async function readServerCompatRequest(protos: ConformanceProtos): Promise<ServerCompatRequest> {
  const schema = protos.message("ServerCompatRequest");
  let buf = Buffer.alloc(0);
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) break;
  }
  if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) {
    throw new Error(`stdin ended after ${buf.length} bytes, before a whole ServerCompatRequest`);
  }
  const size = buf.readUInt32BE(0);
  return fromBinary(schema, buf.subarray(4, 4 + size)) as unknown as ServerCompatRequest;
}

export function writeServerCompatResponse(protos: ConformanceProtos, host: string, port: number): Promise<void> {
  const schema = protos.message("ServerCompatResponse");
  const body = toBinary(schema, create(schema, { host, port } as never));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.length, 0);
  return new Promise((resolve, reject) => process.stdout.write(Buffer.concat([prefix, body]), (err) => (err ? reject(err) : resolve())));
}

/** Refuses what no SUT here offers (the config claims no TLS). */
export function checkSupported(req: ServerCompatRequest): void {
  if (req.useTls) throw new Error("TLS was requested, but this server-under-test serves cleartext only (supports_tls: false)");
}

/**
 * Exit 0 on SIGTERM/SIGINT (the runner sends SIGTERM when done with a server),
 * after stop (bounded). Also exit when the runner itself is gone (killed at a
 * time bound, say): it has no signal handling of its own, and an orphaned
 * server would otherwise listen forever.
 */
export function exitOnTerm(stop: () => Promise<void>): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();
  const onSignal = () => {
    const timer = setTimeout(() => process.exit(0), 2000);
    timer.unref();
    stop().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}

export function fail(err: unknown): never {
  process.stderr.write(`server-under-test failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
