// One unary gRPC call on node:http2 with no gRPC library in between, so a
// drill sees the frames as a proxy does: whether grpc-status came in the
// response HEADERS frame with END_STREAM (Trailers-Only, which Envoy's
// retry_on and outlier detection read) or in trailers after a body (which
// they cannot). It sets no timer of its own on the call: a deadline sent in
// grpc-timeout is enforced by whoever answers, and elapsedMs shows when.
import * as http2 from "node:http2";
import type { IncomingHttpHeaders } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";

export interface RawGrpcAnswer {
  /** The response HEADERS frame. */
  readonly headers: IncomingHttpHeaders;
  /** That frame carried END_STREAM: nothing followed it. */
  readonly headersEndStream: boolean;
  /** Trailers after the body, if the stream did not end with the headers. */
  readonly trailers: IncomingHttpHeaders | undefined;
  readonly bodyBytes: number;
  /** grpc-status as the answer carries it: from the headers when Trailers-Only, else from the trailers. */
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string | undefined;
  readonly elapsedMs: number;
}

export interface RawGrpcCall<I extends DescMessage> {
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  /** "/mesh.testing.v1.EchoService/Echo" */
  path: string;
  schema: I;
  message: MessageInitShape<I>;
  /** Extra request headers, e.g. { "grpc-timeout": "300m" }. */
  headers?: Record<string, string>;
  /** A bound on the whole exchange, so a drill cannot hang: the session is destroyed then. Default 20 s. */
  giveUpAfterMs?: number;
}

function frame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function rawGrpcCall<I extends DescMessage>(call: RawGrpcCall<I>): Promise<RawGrpcAnswer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const session = http2.connect(call.baseUrl);
    const giveUp = setTimeout(() => {
      session.destroy();
      reject(new Error(`no complete answer from ${call.baseUrl}${call.path} within ${call.giveUpAfterMs ?? 20_000} ms`));
    }, call.giveUpAfterMs ?? 20_000);
    session.on("error", (err) => {
      clearTimeout(giveUp);
      reject(err);
    });
    const stream = session.request({
      ":method": "POST",
      ":path": call.path,
      "content-type": "application/grpc",
      te: "trailers",
      ...call.headers,
    });
    let headers: IncomingHttpHeaders | undefined;
    let headersEndStream = false;
    let trailers: IncomingHttpHeaders | undefined;
    let bodyBytes = 0;
    stream.on("response", (h, flags) => {
      headers = h;
      headersEndStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => (bodyBytes += chunk.length));
    stream.on("error", (err) => {
      clearTimeout(giveUp);
      session.destroy();
      reject(err);
    });
    stream.on("close", () => {
      clearTimeout(giveUp);
      const elapsedMs = performance.now() - started;
      session.close();
      if (!headers) return reject(new Error(`${call.path}: the stream closed without response headers (rst code ${stream.rstCode})`));
      const source = headersEndStream ? headers : (trailers ?? {});
      const status = single(source["grpc-status"]);
      resolve({
        headers,
        headersEndStream,
        trailers,
        bodyBytes,
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: single(source["grpc-message"]),
        elapsedMs,
      });
    });
    stream.end(frame(toBinary(call.schema, create(call.schema, call.message))));
  });
}
