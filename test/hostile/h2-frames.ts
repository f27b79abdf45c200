// HTTP/2 by hand, for clients no library would be: frames written byte by
// byte on a plain socket (RFC 9113 section 4), header blocks as HPACK
// literals without Huffman coding (RFC 7541 section 6.2.2), and the frames
// the server sends back, parsed as they arrive.
import * as net from "node:net";

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settingsFrame(entries: Array<[id: number, value: number]> = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function pingFrame(n: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(n >>> 0, 4);
  return frame(FrameType.PING, 0, 0, payload);
}

function hpackInteger(value: number, prefixBits: number, firstByte: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByte | value];
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7, 0)), bytes]);
}

/** A header block of literal fields without indexing, new names: valid HPACK with no table state. */
export function headerBlock(headers: Array<[string, string]>): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

export function grpcRequestHeaders(path: string, extra: Array<[string, string]> = []): Buffer {
  return headerBlock([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "127.0.0.1"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

export function envelope(body: Uint8Array, declaredLength = body.length, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, body]);
}

export interface RawConnection {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  /** Resolves when the server closes the connection (or it errors), with the time it took from connect. */
  readonly closed: Promise<number>;
  write(bytes: Buffer): boolean;
  /** The first frame matching, waiting up to timeoutMs; undefined if none came. */
  waitFor(match: (f: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined>;
  destroy(): void;
}

/** A TCP connection to the server with the frames it sends parsed (after any preface handling by the caller). */
export function connectRaw(port: number, host = "127.0.0.1"): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect(port, host);
    const frames: Frame[] = [];
    const waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame | undefined) => void }> = [];
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        const f: Frame = { type: buf[3], flags: buf[4], streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + length) };
        buf = buf.subarray(9 + length);
        frames.push(f);
        for (const w of [...waiters]) {
          if (w.match(f)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(f);
          }
        }
      }
    });
    const closed = new Promise<number>((done) => {
      socket.once("close", () => {
        for (const w of waiters.splice(0)) w.resolve(undefined);
        done(performance.now() - started);
      });
    });
    socket.on("error", () => undefined);
    socket.once("connect", () =>
      resolve({
        socket,
        frames,
        closed,
        write: (bytes) => (socket.destroyed ? false : socket.write(bytes)),
        waitFor(match, timeoutMs) {
          const found = frames.find(match);
          if (found) return Promise.resolve(found);
          if (socket.destroyed) return Promise.resolve(undefined);
          return new Promise((done) => {
            const waiter = { match, resolve: done };
            waiters.push(waiter);
            setTimeout(() => {
              const i = waiters.indexOf(waiter);
              if (i >= 0) waiters.splice(i, 1);
              done(undefined);
            }, timeoutMs);
          });
        },
        destroy: () => socket.destroy(),
      }),
    );
    socket.once("error", reject);
  });
}

/** Opens an HTTP/2 connection by hand: preface, empty SETTINGS, and the ACK of the server's SETTINGS. */
export async function connectH2(port: number): Promise<RawConnection> {
  const conn = await connectRaw(port);
  conn.write(Buffer.concat([PREFACE, settingsFrame()]));
  await conn.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0, 2_000);
  conn.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
  return conn;
}

export function goawayCode(f: Frame): number {
  return f.payload.readUInt32BE(4);
}

export function rstCode(f: Frame): number {
  return f.payload.readUInt32BE(0);
}
