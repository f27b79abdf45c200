// Order ids are UUIDv7 (RFC 9562): a 48-bit millisecond timestamp, then a
// 12-bit counter in rand_a ("method 1"), then random bits. Within this process
// they increase strictly with creation, so ordering by (created_at, order_id)
// lists orders made in the same millisecond in the order they were made.
import { randomBytes } from "node:crypto";

export interface NewOrderId {
  readonly orderId: string;
  /** The instant embedded in the id; stored as the order's created_at. */
  readonly createdAt: Date;
}

const MAX_COUNTER = 0xfff;
let lastMs = 0;
let counter = 0;

export function newOrderId(): NewOrderId {
  let ms = Date.now();
  if (ms > lastMs) {
    counter = 0;
  } else {
    // Same millisecond, or the clock stepped back: stay on the last instant
    // and count; a spent counter borrows the next millisecond.
    ms = lastMs;
    counter++;
    if (counter > MAX_COUNTER) {
      ms++;
      counter = 0;
    }
  }
  lastMs = ms;
  const bytes = randomBytes(16);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint16(0, Math.floor(ms / 2 ** 32));
  view.setUint32(2, ms % 2 ** 32);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString("hex");
  const orderId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { orderId, createdAt: new Date(ms) };
}
