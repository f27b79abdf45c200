// Field rules declared in the contract ((mesh.v1.rules)), checked before a
// handler runs. A closed set (`in`) is answered with every value it allows,
// never defaulted. Rules are compiled once per message type; a message without
// rules anywhere in its tree costs one WeakMap lookup.
import { getOption, hasOption, isMessage } from "@bufbuild/protobuf";
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Format, rules as rulesExt } from "../gen/mesh/v1/options_pb.js";
import type { FieldRules } from "../gen/mesh/v1/options_pb.js";

export interface FieldViolation {
  /** Path in proto field names, for example "items[2].quantity". */
  readonly field: string;
  readonly description: string;
}

type Check = (value: unknown, path: string, out: FieldViolation[]) => void;

const compiled = new WeakMap<DescMessage, Check | null>();
const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const slugPattern = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Every violation in the message, in field order. */
export function findViolations(schema: DescMessage, message: Message): FieldViolation[] {
  const check = compile(schema, new Set());
  const out: FieldViolation[] = [];
  check?.(message, "", out);
  return out;
}

/** Throws INVALID_ARGUMENT naming every violated field. */
export function assertValid(schema: DescMessage, message: Message): void {
  const violations = findViolations(schema, message);
  if (violations.length > 0) {
    throw new ConnectError(
      "invalid request: " + violations.map((v) => `${v.field}: ${v.description}`).join("; "),
      Code.InvalidArgument,
    );
  }
}

function compile(schema: DescMessage, visiting: Set<DescMessage>): Check | null {
  const known = compiled.get(schema);
  if (known !== undefined) return known;
  // Recursive message types: a type that refers to itself is checked one level at a time.
  if (visiting.has(schema)) return null;
  visiting.add(schema);
  const checks: Check[] = [];
  for (const field of schema.fields) {
    const check = compileField(field, visiting);
    if (check) checks.push(check);
  }
  visiting.delete(schema);
  const result: Check | null =
    checks.length === 0
      ? null
      : (value, path, out) => {
          for (const c of checks) c(value, path, out);
        };
  compiled.set(schema, result);
  return result;
}

function compileField(field: DescField, visiting: Set<DescMessage>): Check | null {
  const rules = hasOption(field, rulesExt) ? getOption(field, rulesExt) : undefined;
  const name = field.name;
  const key = field.localName;
  const join = (path: string) => (path === "" ? name : `${path}.${name}`);

  if (field.fieldKind === "list") {
    const element = field.listKind === "message" ? compile(field.message, visiting) : null;
    const scalarRules = field.listKind === "message" ? undefined : rules;
    if (!rules && !element) return null;
    return (msg, path, out) => {
      const list = (msg as Record<string, unknown[]>)[key];
      const at = join(path);
      if (rules?.required && list.length === 0) out.push({ field: at, description: "must not be empty" });
      if (rules && rules.maxItems > 0 && list.length > rules.maxItems) {
        out.push({ field: at, description: `must have at most ${rules.maxItems} items` });
      }
      list.forEach((item, i) => {
        if (element && isMessage(item)) element(item, `${at}[${i}]`, out);
        if (scalarRules) checkValue(scalarRules, item, `${at}[${i}]`, out, false);
      });
    };
  }
  if (field.fieldKind === "message") {
    const nested = compile(field.message, visiting);
    if (!rules && !nested) return null;
    return (msg, path, out) => {
      const value = (msg as Record<string, unknown>)[key];
      const at = join(path);
      if (value === undefined) {
        if (rules?.required) out.push({ field: at, description: "is required" });
        return;
      }
      if (nested) nested(value, at, out);
    };
  }
  if (field.fieldKind === "map" || !rules) return null;
  return (msg, path, out) => {
    checkValue(rules, (msg as Record<string, unknown>)[key], join(path), out, rules.required);
  };
}

function checkValue(rules: FieldRules, value: unknown, at: string, out: FieldViolation[], required: boolean): void {
  if (typeof value === "string") {
    if (value.length === 0) {
      if (required) out.push({ field: at, description: "is required" });
      return;
    }
    const length = [...value].length;
    if (rules.minLen > 0 && length < rules.minLen) {
      out.push({ field: at, description: `must be at least ${rules.minLen} characters` });
    }
    if (rules.maxLen > 0 && length > rules.maxLen) {
      out.push({ field: at, description: `must be at most ${rules.maxLen} characters` });
    }
    const format = formatProblem(rules.format, value);
    if (format) out.push({ field: at, description: format });
    if (rules.in.length > 0 && !rules.in.includes(value)) {
      out.push({ field: at, description: `must be one of ${rules.in.map((v) => JSON.stringify(v)).join(", ")}` });
    }
    return;
  }
  if (value instanceof Uint8Array) {
    if (required && value.length === 0) out.push({ field: at, description: "is required" });
    if (rules.maxLen > 0 && value.length > rules.maxLen) {
      out.push({ field: at, description: `must be at most ${rules.maxLen} bytes` });
    }
    return;
  }
  if (typeof value === "number" || typeof value === "bigint") {
    if (required && (value === 0 || value === 0n)) out.push({ field: at, description: "is required" });
    if (rules.hasMin && BigInt(value) < rules.min) out.push({ field: at, description: `must be at least ${rules.min}` });
    if (rules.hasMax && BigInt(value) > rules.max) out.push({ field: at, description: `must be at most ${rules.max}` });
  }
}

function formatProblem(format: Format, value: string): string | undefined {
  switch (format) {
    case Format.EMAIL:
      return emailPattern.test(value) ? undefined : "must be a valid email address";
    case Format.UUID:
      return uuidPattern.test(value) ? undefined : "must be a UUID";
    case Format.SLUG:
      return slugPattern.test(value) ? undefined : "must contain only lowercase letters, digits and dashes";
    default:
      return undefined;
  }
}
