// Fields marked (mesh.v1.sensitive) in the contract never reach a log line.
// Request bodies are not logged by default; when LOG_BODIES is on, bodies pass
// through redactForLog first.
import { getOption, hasOption, toJson } from "@bufbuild/protobuf";
import type { DescField, DescMessage, JsonValue, Message } from "@bufbuild/protobuf";
import { sensitive } from "../gen/mesh/v1/options_pb.js";

export const REDACTED = "[REDACTED]";

/** The message as JSON, with every sensitive field (at any depth) replaced by "[REDACTED]". */
export function redactForLog(schema: DescMessage, message: Message): JsonValue {
  const json = toJson(schema, message, { alwaysEmitImplicit: false });
  return redactJson(schema, json);
}

function redactJson(schema: DescMessage, json: JsonValue): JsonValue {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  const out: { [k: string]: JsonValue } = { ...json };
  for (const field of schema.fields) {
    const name = field.jsonName;
    if (!(name in out)) continue;
    if (isSensitive(field)) {
      out[name] = REDACTED;
    } else if (field.fieldKind === "message") {
      out[name] = redactJson(field.message, out[name]);
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      const items = out[name];
      const elementSchema = field.message;
      if (Array.isArray(items)) out[name] = items.map((item) => redactJson(elementSchema, item));
    }
  }
  return out;
}

export function isSensitive(field: DescField): boolean {
  return hasOption(field, sensitive) && getOption(field, sensitive);
}
