// A small JSON Schema checker for the keywords runner/openapi.ts writes, so
// the tests can hold real answers and the examples to the document's schemas
// without a validator package: $ref (into #/components/schemas), type (one
// or a list), properties, required, additionalProperties, items, enum, const,
// not, minLength, maxLength, pattern, minimum, maximum, minItems, maxItems,
// propertyNames, and the formats date-time, uuid, email, int64 and uint64.
// A keyword it does not know throws: the checker may be partial, never
// silently lenient. Unknown properties are errors too ("closed" objects),
// which is stricter than JSON Schema on purpose: an answer with a field the
// document does not describe means the document is out of date.

type Json = Record<string, unknown>;

const known = new Set([
  "$ref", "type", "properties", "required", "additionalProperties", "items", "enum", "const", "not", "minLength", "maxLength", "pattern",
  "minimum", "maximum", "minItems", "maxItems", "propertyNames", "format", "description", "title", "deprecated", "contentEncoding",
  "x-enumDescriptions", "$comment",
]);

const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** Every way the value breaks the schema, as "path: problem"; empty when it conforms. */
export function schemaErrors(value: unknown, schema: Json, schemas: Record<string, Json>, path = "$"): string[] {
  const out: string[] = [];
  for (const key of Object.keys(schema)) if (!known.has(key)) throw new Error(`${path}: the checker does not know the keyword ${key}`);
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const target = schemas[name];
    if (!target) return [`${path}: $ref to a missing schema ${schema.$ref}`];
    out.push(...schemaErrors(value, target, schemas, path));
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    const actual = typeOf(value);
    if (!types.includes(actual) && !(actual === "integer" && types.includes("number"))) {
      out.push(`${path}: is ${actual}, not ${types.join(" or ")}`);
      return out;
    }
  }
  if (schema.enum !== undefined && !(schema.enum as unknown[]).includes(value)) out.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if ("const" in schema && value !== schema.const) out.push(`${path}: is not ${JSON.stringify(schema.const)}`);
  if (schema.not !== undefined && schemaErrors(value, schema.not as Json, schemas, path).length === 0) out.push(`${path}: matches what "not" excludes`);
  if (typeof value === "string") {
    const length = [...value].length;
    if (typeof schema.minLength === "number" && length < schema.minLength) out.push(`${path}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === "number" && length > schema.maxLength) out.push(`${path}: longer than ${schema.maxLength}`);
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) out.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    if (schema.format === "date-time" && !(rfc3339.test(value) && !Number.isNaN(Date.parse(value)))) out.push(`${path}: ${JSON.stringify(value)} is not an RFC 3339 date-time`);
    if (schema.format === "uuid" && !uuid.test(value)) out.push(`${path}: ${JSON.stringify(value)} is not a UUID`);
    if (schema.format === "email" && !/^[^\s@]+@[^\s@]+$/.test(value)) out.push(`${path}: ${JSON.stringify(value)} is not an email address`);
    if (schema.format === "int64" && !/^-?[0-9]+$/.test(value)) out.push(`${path}: ${JSON.stringify(value)} is not an int64 string`);
    if (schema.format === "uint64" && !/^[0-9]+$/.test(value)) out.push(`${path}: ${JSON.stringify(value)} is not a uint64 string`);
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) out.push(`${path}: below ${schema.minimum}`);
    if (typeof schema.maximum === "number" && value > schema.maximum) out.push(`${path}: above ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) out.push(`${path}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) out.push(`${path}: more than ${schema.maxItems} items`);
    if (schema.items !== undefined) value.forEach((item, i) => out.push(...schemaErrors(item, schema.items as Json, schemas, `${path}[${i}]`)));
  }
  if (typeOf(value) === "object") {
    const object = value as Json;
    for (const name of (schema.required ?? []) as string[]) if (!(name in object)) out.push(`${path}: ${name} is required`);
    const properties = schema.properties as Record<string, Json> | undefined;
    for (const [name, v] of Object.entries(object)) {
      if (properties?.[name]) out.push(...schemaErrors(v, properties[name], schemas, `${path}.${name}`));
      else if (typeof schema.additionalProperties === "object") {
        if (schema.propertyNames) out.push(...schemaErrors(name, schema.propertyNames as Json, schemas, `${path} key ${JSON.stringify(name)}`));
        out.push(...schemaErrors(v, schema.additionalProperties as Json, schemas, `${path}[${JSON.stringify(name)}]`));
      } else if (schema.additionalProperties !== true && (properties !== undefined || schema.type === "object")) {
        out.push(`${path}: ${name} is not a field the document describes`);
      }
    }
  }
  return out;
}
