// Seeded generation of request messages from their descriptors, and of
// broken gRPC envelopes made from them, for the hostile-client fuzzer
// (fuzz.test.ts) and the soak benchmark (bench/soak.ts). Everything random
// comes from one small PRNG, so a seed names a whole run.
import { gzipSync } from "node:zlib";
import { create, getOption, hasOption, toBinary, toJsonString, ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { ReflectMessage } from "@bufbuild/protobuf/reflect";
import { FieldRulesSchema, Format, rules as rulesOption } from "../../gen/mesh/v1/options_pb.js";
import type { FieldRules } from "../../gen/mesh/v1/options_pb.js";

// ---------------------------------------------------------------- PRNG

/** mulberry32: a 32-bit state, good enough for test inputs, and tiny. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for one part of a run (a method, a case), derived from the run's seed and a label: FNV-1a. */
export function deriveSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** A uniformly random 64-bit pattern as an unsigned bigint. */
  u64(): bigint {
    return (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32));
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** The seed of a run: FUZZ_SEED when set (decimal or 0x hex), else a fresh one. */
export function runSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FUZZ_SEED;
  if (raw !== undefined && raw !== "") {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`FUZZ_SEED=${raw}: expected an integer in [0, 2^32)`);
    return value;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

// ---------------------------------------------------------------- values

export type GenerateMode = "conforming" | "plausible" | "wild";

export interface GenerateOptions {
  /**
   * "conforming": plausible values that also keep the field rules the
   * contract declares ((mesh.v1.rules): format, lengths, ranges, required,
   * closed sets),
   * so calls get past validation into the handlers. "plausible": values a
   * real client might send (dictionary strings, small numbers, known enum
   * values), rules or not. "wild": extremes of every type.
   */
  mode: GenerateMode;
  /** Strings to reuse: ids, SKUs, emails the shop knows. */
  dictionary?: readonly string[];
  /** Nesting bound for message fields. Default 4. */
  maxDepth?: number;
}

const INT32_EXTREMES = [-(2 ** 31), -1, 0, 1, 2 ** 31 - 1, 2 ** 31 - 2, -(2 ** 31) + 1];
const UINT32_EXTREMES = [0, 1, 2 ** 32 - 1, 2 ** 31, 2 ** 31 - 1];
const INT64_EXTREMES = [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 32n];
const UINT64_EXTREMES = [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 53n + 1n];
const FLOAT32_MAX = 3.4028234663852886e38;
const FLOAT_EXTREMES = [0, -0, Number.NaN, Infinity, -Infinity, FLOAT32_MAX, -FLOAT32_MAX, 1.401298464324817e-45, 1.5, -2.25];
const DOUBLE_EXTREMES = [0, -0, Number.NaN, Infinity, -Infinity, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 53 + 2, 0.1];

const ODD_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ufeffbom",
  "\u202eevil.txt",
  "zero\u200bwidth",
  "e\u0301\u0301\u0301",
  "\ud83d\ude00\ud83d\udc4d\ud83c\udffd",
  "\ufffd replacement",
  "\uffff\ufffe noncharacters",
  "日本語のテキスト",
  "مرحبا بالعالم",
  "' OR 1=1 --",
  "\"; DROP TABLE users; --",
  "../../etc/passwd",
  "%00%ff%s%n",
  "{\"json\":true}",
  "line\r\nbreak",
  "\t\v\f",
  "null",
  "undefined",
  "NaN",
  "-1",
  "9223372036854775808",
  "__proto__",
  "constructor",
  "a@b",
  "@example.com",
  "user@example.com",
  "x".repeat(256),
  // A surrogate pair across the places where messages and logs get clipped.
  "a".repeat(199) + "\ud83d\ude00",
  "a".repeat(1023) + "\ud83d\ude00",
  "\ud83d\ude00".repeat(700),
];

const WORDS = ["ada", "mug", "grinder", "beans", "order", "user", "pm_card_ok", "pm_card_declined", "latte-mug", "hand-grinder", "espresso-beans-1kg", "test", "0", "1"];

function randomUnicode(rng: Rng, length: number): string {
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e],
    [0xa0, 0x24f],
    [0x370, 0x3ff],
    [0x400, 0x4ff],
    [0x590, 0x6ff],
    [0x300, 0x36f],
    [0x3040, 0x30ff],
    [0x4e00, 0x9fff],
    [0xfff0, 0xfffd],
    [0x1f300, 0x1faff],
    [0x10000, 0x10ffff],
  ];
  let out = "";
  while (out.length < length) {
    const [lo, hi] = rng.pick(ranges);
    out += String.fromCodePoint(rng.range(lo, hi));
  }
  return out;
}

function randomAscii(rng: Rng, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += String.fromCharCode(rng.range(0x20, 0x7e));
  return out;
}

function uuidLike(rng: Rng): string {
  const hex = rng.bytes(16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

class Generator {
  private readonly rng: Rng;
  private readonly options: GenerateOptions;
  private readonly maxDepth: number;
  /** Long strings and bytes left for this message: keeps a message within tens of KB. */
  private longLeft = 3;

  constructor(rng: Rng, options: GenerateOptions) {
    this.rng = rng;
    this.options = options;
    this.maxDepth = options.maxDepth ?? 4;
  }

  private get plausible(): boolean {
    return this.options.mode !== "wild";
  }

  private get conforming(): boolean {
    return this.options.mode === "conforming";
  }

  /** A string that keeps the field's declared format and length. */
  conformingString(rules: FieldRules, name: string): string {
    const rng = this.rng;
    // A closed set: one of its values, nothing else gets past validation.
    if (rules.in.length > 0) return rng.pick(rules.in);
    // Rules the contract states in prose only: a few names get values of their kind.
    for (const [pattern, values] of NAME_HINTS) if (pattern.test(name) && rng.chance(0.8)) return rng.pick(values);
    const dictionary = this.options.dictionary ?? [];
    const matching = (pattern: RegExp) => dictionary.filter((d) => pattern.test(d));
    let value: string;
    switch (rules.format) {
      case Format.EMAIL: {
        const known = matching(EMAIL);
        value = known.length > 0 && rng.chance(0.6) ? rng.pick(known) : `fuzz-${rng.int(1_000_000)}@example.com`;
        break;
      }
      case Format.UUID: {
        const known = matching(UUID);
        value = known.length > 0 && rng.chance(0.7) ? rng.pick(known) : uuidLike(rng);
        break;
      }
      case Format.SLUG: {
        const known = matching(SLUG);
        value = known.length > 0 && rng.chance(0.8) ? rng.pick(known) : `${rng.pick(WORDS.filter((w) => SLUG.test(w)))}-${rng.int(100)}`;
        break;
      }
      default:
        value = dictionary.length > 0 && rng.chance(0.5) ? rng.pick(dictionary) : rng.chance(0.5) ? rng.pick(WORDS) : randomAscii(rng, rng.range(1, 24));
    }
    const min = Math.max(rules.minLen, rules.required ? 1 : 0);
    if (value.length < min) value = value + "x".repeat(min - value.length);
    if (rules.maxLen > 0 && value.length > rules.maxLen) value = value.slice(0, rules.maxLen);
    return value;
  }

  /** An integer within the field's declared range, near its ends or small. */
  conformingInt(rules: FieldRules, fallback: () => number): number {
    const rng = this.rng;
    if (!rules.hasMin && !rules.hasMax) {
      const v = fallback();
      return rules.required && v === 0 ? 1 : v;
    }
    const lo = rules.hasMin ? Number(rules.min) : Math.min(0, Number(rules.max));
    const hi = rules.hasMax ? Number(rules.max) : lo + 10;
    const roll = rng.next();
    const v = roll < 0.15 ? lo : roll < 0.3 ? hi : Math.min(hi, lo + rng.int(Math.min(5, hi - lo + 1)));
    return rules.required && v === 0 ? (hi >= 1 ? 1 : -1) : v;
  }

  string(): string {
    const rng = this.rng;
    const dictionary = this.options.dictionary ?? [];
    if (this.plausible) {
      const roll = rng.next();
      if (roll < 0.45 && dictionary.length > 0) return rng.pick(dictionary);
      if (roll < 0.6) return `${rng.pick(WORDS)}-${rng.int(1000)}@example.com`;
      if (roll < 0.7) return uuidLike(rng);
      if (roll < 0.85) return rng.pick(WORDS);
      return randomAscii(rng, rng.range(1, 24));
    }
    const roll = rng.next();
    if (roll < 0.2) return rng.pick(ODD_STRINGS);
    if (roll < 0.3 && dictionary.length > 0) return rng.pick(dictionary) + rng.pick(ODD_STRINGS);
    if (roll < 0.45 && this.longLeft > 0) {
      this.longLeft--;
      return rng.chance(0.5) ? randomUnicode(rng, rng.range(256, 4096)) : rng.pick(["a", "\u00e9", "\ud83d\ude00", "<>"]).repeat(rng.range(512, 4096));
    }
    if (roll < 0.7) return randomUnicode(rng, rng.range(0, 40));
    return randomAscii(rng, rng.range(0, 64));
  }

  bytes(): Uint8Array {
    const rng = this.rng;
    if (this.plausible) return rng.bytes(rng.range(0, 32));
    if (this.longLeft > 0 && rng.chance(0.2)) {
      this.longLeft--;
      return rng.bytes(rng.range(1024, 4096));
    }
    return rng.bytes(rng.range(0, 256));
  }

  scalar(type: ScalarType): unknown {
    const rng = this.rng;
    const p = this.plausible;
    switch (type) {
      case ScalarType.STRING:
        return this.string();
      case ScalarType.BYTES:
        return this.bytes();
      case ScalarType.BOOL:
        return rng.chance(0.5);
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        if (p) return rng.chance(0.8) ? rng.range(0, 5) : rng.range(-10, 200);
        return rng.chance(0.6) ? rng.pick(INT32_EXTREMES) : rng.int(2 ** 32) - 2 ** 31;
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        if (p) return rng.range(0, 10);
        return rng.chance(0.6) ? rng.pick(UINT32_EXTREMES) : rng.int(2 ** 32);
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        if (p) return BigInt(rng.chance(0.7) ? rng.range(0, 10) : rng.range(-1000, 1_000_000));
        return rng.chance(0.6) ? rng.pick(INT64_EXTREMES) : BigInt.asIntN(64, rng.u64());
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        if (p) return BigInt(rng.range(0, 1_000_000));
        return rng.chance(0.6) ? rng.pick(UINT64_EXTREMES) : rng.u64();
      case ScalarType.FLOAT:
        if (p) return Math.fround(rng.next() * 100);
        return rng.chance(0.6) ? rng.pick(FLOAT_EXTREMES) : Math.fround((rng.next() - 0.5) * 1e30);
      case ScalarType.DOUBLE:
        if (p) return rng.next() * 100;
        return rng.chance(0.6) ? rng.pick(DOUBLE_EXTREMES) : (rng.next() - 0.5) * 10 ** rng.range(-300, 300);
    }
  }

  enumValue(field: DescField & { enum: NonNullable<DescField["enum"]> }): number {
    const rng = this.rng;
    const known = field.enum.values.map((v) => v.number);
    if (this.plausible ? rng.chance(0.9) : rng.chance(0.5)) return rng.pick(known);
    // Unknown numbers: proto3 enums are open, the receiver must cope.
    return rng.pick([-1, 99, 1000, 2 ** 31 - 1, -(2 ** 31), Math.max(...known) + 1]);
  }

  mapKey(type: ScalarType): unknown {
    // A map key is any scalar but float, double and bytes.
    return this.scalar(type);
  }

  message(schema: DescMessage, depth = 0): ReflectMessage {
    const rng = this.rng;
    const r = reflect(schema, create(schema));
    const fill = this.plausible ? 0.85 : 0.7;
    for (const member of schema.members) {
      if (member.kind === "oneof") {
        // One case of the group, or none.
        if (rng.chance(0.85)) this.field(r, rng.pick(member.fields), depth);
        continue;
      }
      // Conforming messages set every field the contract has rules for.
      const ruled = this.conforming && rulesOf(member) !== undefined;
      if (ruled || rng.chance(fill)) this.field(r, member, depth);
    }
    return r;
  }

  private field(r: ReflectMessage, field: DescField, depth: number): void {
    const rng = this.rng;
    const nested = depth + 1 < this.maxDepth || (this.conforming && rulesOf(field)?.required === true);
    const rules = this.conforming ? rulesOf(field) : undefined;
    switch (field.fieldKind) {
      case "scalar":
        if (this.conforming && field.scalar === ScalarType.STRING) r.set(field, this.conformingString(rules ?? create(FieldRulesSchema), field.name));
        else if (rules && INT32_TYPES.has(field.scalar)) r.set(field, this.conformingInt(rules, () => this.scalar(field.scalar) as number));
        else if (rules && INT64_TYPES.has(field.scalar)) r.set(field, BigInt(this.conformingInt(rules, () => Number(this.scalar(field.scalar) as bigint))));
        else r.set(field, this.scalar(field.scalar));
        return;
      case "enum":
        r.set(field, this.enumValue(field));
        return;
      case "message":
        if (nested) r.set(field, this.message(field.message, depth + 1));
        return;
      case "list": {
        const list = r.get(field);
        let n = this.plausible ? rng.range(1, 3) : rng.chance(0.15) ? rng.range(10, 40) : rng.range(0, 5);
        if (rules && rules.maxItems > 0) n = Math.min(n, rules.maxItems);
        for (let i = 0; i < n; i++) {
          if (field.listKind === "scalar") list.add(this.scalar(field.scalar));
          else if (field.listKind === "enum") list.add(this.enumValue(field as never));
          else if (nested) list.add(this.message(field.message, depth + 1));
        }
        return;
      }
      case "map": {
        const map = r.get(field);
        const n = rng.range(0, this.plausible ? 3 : 6);
        for (let i = 0; i < n; i++) {
          const key = this.mapKey(field.mapKey);
          if (field.mapKind === "scalar") map.set(key, this.scalar(field.scalar));
          else if (field.mapKind === "enum") map.set(key, this.enumValue(field as never));
          else if (nested) map.set(key, this.message(field.message, depth + 1));
        }
        return;
      }
    }
  }
}

const NAME_HINTS: Array<[RegExp, string[]]> = [
  [/currency/, ["EUR", "USD", "GBP", "eur", "XXX"]],
  [/payment_method/, ["pm_card_ok", "pm_card_ok", "pm_card_declined"]],
  [/password/, ["a-long-password", "correct horse battery staple"]],
];
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const INT32_TYPES = new Set([ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32, ScalarType.UINT32, ScalarType.FIXED32]);
const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64, ScalarType.UINT64, ScalarType.FIXED64]);

function rulesOf(field: DescField): FieldRules | undefined {
  return hasOption(field, rulesOption) ? getOption(field, rulesOption) : undefined;
}

/** A message of the schema with random values of the right types in its fields. */
export function generateMessage(schema: DescMessage, rng: Rng, options: GenerateOptions): Message {
  return new Generator(rng, options).message(schema).message;
}

// ---------------------------------------------------------------- framing

/** A gRPC length-prefixed message: flags, 4-byte big-endian length, payload. declaredLength overrides the length field. */
export function envelope(payload: Uint8Array, flags = 0, declaredLength = payload.length): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(declaredLength >>> 0, 1);
  out.set(payload, 5);
  return out;
}

/** What one fuzz call sends: request DATA chunks (each written separately) and any extra headers. */
export interface WirePlan {
  /** The case's name in reports: "valid", "valid/gzip", "bit-flip", ... */
  kind: string;
  chunks: Buffer[];
  /** Content-type, grpc-encoding and the like. */
  headers: Record<string, string>;
  /**
   * What the answer must be, beyond "a status, never INTERNAL or UNKNOWN":
   * "not-ok" (any error), a code the gRPC spec names for this input, or
   * "any". internalMessage: the one INTERNAL the spec asks for.
   */
  expect: { kind: "any" } | { kind: "not-ok" } | { kind: "code"; code: number; messageIncludes?: string };
}

const GRPC = { "content-type": "application/grpc" };
const GRPC_JSON = { "content-type": "application/grpc+json" };

/** Encodes messages for a call: proto, or JSON when asked and the message has a JSON form. */
export function encodeValid(schema: DescMessage, messages: Message[], rng: Rng, allowJson: boolean): WirePlan {
  const roll = rng.next();
  if (allowJson && roll < 0.2) {
    try {
      const encoder = new TextEncoder();
      return { kind: "valid/json", chunks: messages.map((m) => envelope(encoder.encode(toJsonString(schema, m)))), headers: { ...GRPC_JSON }, expect: { kind: "any" } };
    } catch {
      // NaN or Infinity in a google.protobuf.Value has no JSON form: send proto.
    }
  }
  const payloads = messages.map((m) => toBinary(schema, m));
  if (roll < 0.35) {
    return { kind: "valid/gzip", chunks: payloads.map((p) => envelope(gzipSync(p), 1)), headers: { ...GRPC, "grpc-encoding": "gzip" }, expect: { kind: "any" } };
  }
  if (roll < 0.5) {
    // The same bytes, one per DATA frame: the deframer must reassemble them.
    const all = Buffer.concat(payloads.map((p) => envelope(p)));
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; ) {
      const n = Math.min(all.length - i, rng.chance(0.7) ? 1 : rng.range(2, 64));
      chunks.push(all.subarray(i, i + n));
      i += n;
    }
    return { kind: "valid/dribbled", chunks, headers: { ...GRPC }, expect: { kind: "any" } };
  }
  return { kind: "valid", chunks: payloads.map((p) => envelope(p)), headers: { ...GRPC }, expect: { kind: "any" } };
}

export const MUTATIONS = [
  "bit-flip",
  "truncated-payload",
  "garbage-extended-payload",
  "random-payload",
  "wrong-wire-type",
  "unknown-field",
  "envelope-too-long",
  "envelope-too-short",
  "envelope-oversized",
  "partial-envelope-header",
  "compressed-flag-without-encoding",
  "compressed-flag-not-gzip",
  "gzip-bomb",
  "unknown-flag-bits",
  "no-message",
  "extra-message",
  "json-bit-flip",
  "invalid-utf8-string",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

const RESOURCE_EXHAUSTED = 8;
const INTERNAL = 13;

/**
 * A broken request made from valid messages: the last message of the call is
 * the one mutated (for a unary call, the only one).
 */
export function mutate(kind: Mutation, method: DescMethod, messages: Message[], rng: Rng, maxMessageBytes: number): WirePlan {
  const schema = method.input;
  const single = method.methodKind === "unary" || method.methodKind === "server_streaming";
  const payloads = messages.map((m) => Buffer.from(toBinary(schema, m)));
  const good = payloads.slice(0, -1).map((p) => envelope(p));
  const last = payloads[payloads.length - 1];
  const plan = (chunks: Buffer[], expect: WirePlan["expect"], headers: Record<string, string> = GRPC): WirePlan => ({ kind, chunks: [...good, ...chunks], headers: { ...headers }, expect });
  const any = { kind: "any" } as const;
  // Structural breakage that the end of the body makes certain.
  const broken = { kind: "not-ok" } as const;
  switch (kind) {
    case "bit-flip": {
      const bytes = Buffer.from(last.length > 0 ? last : rng.bytes(4));
      const flips = rng.range(1, 8);
      for (let i = 0; i < flips; i++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      return plan([envelope(bytes)], any);
    }
    case "truncated-payload":
      return plan([envelope(last.subarray(0, last.length > 0 ? rng.int(last.length) : 0))], any);
    case "garbage-extended-payload":
      return plan([envelope(Buffer.concat([last, rng.bytes(rng.range(1, 64))]))], any);
    case "random-payload":
      return plan([envelope(rng.bytes(rng.range(1, 512)))], any);
    case "wrong-wire-type": {
      const bytes = Buffer.from(last.length > 0 ? last : Buffer.from([0x08, 0x01]));
      // The first tag, when it fits in one byte: keep the field number, change the wire type (3, 4: groups; 6, 7: invalid).
      if (bytes[0] < 0x80) bytes[0] = (bytes[0] & ~7) | rng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== (bytes[0] & 7)));
      return plan([envelope(bytes)], any);
    }
    case "unknown-field": {
      // Field 536870911 (the largest), or one in the reserved 19000-19999 range, as a varint or bytes.
      const number = rng.pick([536870911, 19000, 19999, 100000]);
      const wire = rng.pick([0, 2]);
      const tag = encodeVarint(BigInt(number) * 8n + BigInt(wire));
      const value = wire === 0 ? encodeVarint(rng.u64()) : Buffer.concat([encodeVarint(16n), rng.bytes(16)]);
      return plan([envelope(Buffer.concat([last, tag, value]))], any);
    }
    case "envelope-too-long":
      return plan([envelope(last, 0, last.length + rng.range(1, 100))], broken);
    case "envelope-too-short":
      if (last.length === 0) return plan([envelope(last, 0, rng.range(1, 100))], broken);
      // The rest of the bytes follow as if they were another envelope.
      return plan([envelope(last, 0, rng.int(last.length))], single ? broken : any);
    case "envelope-oversized":
      return plan([envelope(last, 0, rng.pick([maxMessageBytes + 1, maxMessageBytes * 2, 0xffffffff, 0x7fffffff]))], { kind: "code", code: RESOURCE_EXHAUSTED });
    case "partial-envelope-header":
      return plan([envelope(last).subarray(0, rng.range(1, 4))], broken);
    case "compressed-flag-without-encoding":
      // The gRPC spec asks for INTERNAL here ("compressed flag set without grpc-encoding").
      return plan([envelope(last, 1)], { kind: "code", code: INTERNAL, messageIncludes: "compressed message without grpc-encoding" });
    case "compressed-flag-not-gzip":
      return plan([envelope(last, 1)], broken, { ...GRPC, "grpc-encoding": "gzip" });
    case "gzip-bomb":
      // A few KB on the wire, more than the message limit once inflated.
      return plan([envelope(gzipSync(Buffer.alloc(maxMessageBytes + 1024)), 1)], { kind: "code", code: RESOURCE_EXHAUSTED }, { ...GRPC, "grpc-encoding": "gzip" });
    case "unknown-flag-bits":
      // Only bit 0 means anything; the others are reserved.
      return plan([envelope(last, rng.pick([0x02, 0x80, 0xfe]))], any);
    case "no-message":
      return { kind, chunks: [], headers: { ...GRPC }, expect: single ? broken : any };
    case "extra-message":
      return plan([envelope(last), envelope(last)], single ? broken : any);
    case "invalid-utf8-string": {
      // A string field carrying bytes that are not UTF-8 (a lone 0xff, an overlong NUL, an encoded surrogate, a cut sequence).
      const strings = schema.fields.filter((f) => (f.fieldKind === "scalar" || f.fieldKind === "list") && f.scalar === ScalarType.STRING);
      const number = strings.length > 0 ? rng.pick(strings).number : 536870911;
      const bad = rng.pick([Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0x61, 0xe2, 0x82]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])]);
      const field = Buffer.concat([encodeVarint(BigInt(number) * 8n + 2n), encodeVarint(BigInt(bad.length)), bad]);
      return plan([envelope(Buffer.concat([last, field]))], any);
    }
    case "json-bit-flip": {
      let text: Buffer;
      try {
        text = Buffer.from(toJsonString(schema, messages[messages.length - 1]));
      } catch {
        text = Buffer.from("{}");
      }
      const flips = rng.range(1, 4);
      for (let i = 0; i < flips; i++) text[rng.int(text.length)] ^= 1 << rng.int(8);
      const jsonGood = messages.slice(0, -1).map((m) => {
        try {
          return envelope(Buffer.from(toJsonString(schema, m)));
        } catch {
          return envelope(Buffer.from("{}"));
        }
      });
      return { kind, chunks: [...jsonGood, envelope(text)], headers: { ...GRPC_JSON }, expect: any };
    }
  }
}

function encodeVarint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/** Short hex of a request body for a report: enough to rebuild the case by hand. */
export function hexPreview(chunks: Buffer[], max = 96): string {
  const all = Buffer.concat(chunks);
  const hex = all.subarray(0, max).toString("hex");
  return all.length > max ? `${hex}… (${all.length} bytes)` : `${hex} (${all.length} bytes)`;
}
