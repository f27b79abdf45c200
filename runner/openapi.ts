// An OpenAPI 3.1 document of the Connect JSON surface, generated from the
// same descriptors the server registers (gen/*_pb.js) and described with the
// contracts' own comments (gen/descriptors.binpb, documentedFileSet()). It
// guarantees: every unary method given is `POST /<package>.<Service>/<Method>`
// with its request and response message as proto3 JSON (jsonName keys, 64-bit
// integers as decimal strings, enums by value name, Timestamps as RFC 3339
// strings, bytes as base64, and the other well-known types as their JSON
// mapping); the field rules of (mesh.v1.rules) as JSON Schema constraints;
// bearer auth exactly where the method's (mesh.v1.policy) audience is USER or
// SERVICE (contractOf); every error answer as the Connect error body. Methods
// that stream are not paths: Connect streams are enveloped frames
// (application/connect+json), not one JSON body, so they are listed under
// `x-shop-streaming` with their message schemas instead. Nothing here is
// written by hand per method except the examples (runner/api-examples.ts).
import { ScalarType } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { DescriptorProto, EnumDescriptorProto, FileDescriptorSet, SourceCodeInfo_Location } from "@bufbuild/protobuf/wkt";
import { contractOf } from "@shop/platform";
import { Format, rules as rulesOption, sensitive as sensitiveOption } from "../gen/mesh/v1/options_pb.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it) or any other JSON object of the document. */
export type Json = { [key: string]: unknown };

export interface OpenApiDocument extends Json {
  openapi: string;
  info: { title: string; version: string; description: string };
  paths: Record<string, { post: Operation }>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
  tags: Array<{ name: string; description?: string }>;
  "x-shop-streaming": StreamingMethod[];
}

export interface Operation extends Json {
  operationId: string;
  tags: string[];
  summary: string;
  description: string;
  parameters: Json[];
  requestBody: { required: true; content: { "application/json": { schema: Json; example?: unknown } } };
  responses: Record<string, Json>;
  security?: Array<Record<string, string[]>>;
  "x-shop-audience": string;
  "x-shop-idempotency": string;
  "x-shop-deadline-ms"?: number;
  "x-shop-example"?: ExampleAnswer;
}

/** What an example's call answers as printed (and, for methods that need one, with a valid token). */
export interface ExampleAnswer {
  /**
   * "ok": HTTP 200 with the response message; "any": no promise (an example
   * made from the field rules: a response or a Connect error, JSON either
   * way); otherwise the Connect error code it answers.
   */
  readonly answers: "ok" | "any" | string;
  /** Said beside the example: why it answers what it answers, what to change. */
  readonly note?: string;
  /** Headers the example sends besides content-type and authorization. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Example extends ExampleAnswer {
  /** The request message in proto3 JSON. */
  readonly body: Json;
}

export interface StreamingMethod extends Json {
  path: string;
  service: string;
  method: string;
  kind: DescMethod["methodKind"];
  description: string;
  audience: string;
  deadlineMs?: number;
  request: Json;
  response: Json;
  /** Only for server streams with a written example. */
  example?: Example;
}

export interface OpenApiOptions {
  readonly title: string;
  readonly description: string;
  /** Comments by fully qualified element name (commentIndex()). */
  readonly comments: ReadonlyMap<string, string>;
  /** Header parameters some services take besides the Connect ones (the edge's x-shop-service). */
  readonly headersFor?: (service: DescService) => Json[];
  /** The example request of a unary method; without one, a request is made from its field rules. */
  readonly exampleFor?: (method: DescMethod) => Example | undefined;
  /** False leaves a method out entirely (the edge does not route it). Default: all. */
  readonly include?: (method: DescMethod) => boolean;
}

/** Where the Connect error body's schema is. */
export const CONNECT_ERROR_REF = "#/components/schemas/connect.error";

/** Connect error codes and the HTTP status of a unary answer carrying each (connectrpc.com/docs/protocol). */
export const CONNECT_CODES: ReadonlyArray<readonly [code: string, httpStatus: number]> = [
  ["canceled", 499],
  ["unknown", 500],
  ["invalid_argument", 400],
  ["deadline_exceeded", 504],
  ["not_found", 404],
  ["already_exists", 409],
  ["permission_denied", 403],
  ["resource_exhausted", 429],
  ["failed_precondition", 400],
  ["aborted", 409],
  ["out_of_range", 400],
  ["unimplemented", 501],
  ["internal", 500],
  ["unavailable", 503],
  ["data_loss", 500],
  ["unauthenticated", 401],
];

// ---------------------------------------------------------------------------
// Comments

// Field numbers in descriptor.proto, which SourceCodeInfo paths are made of.
const FILE_PACKAGE = 2;
const FILE_MESSAGE = 4;
const FILE_ENUM = 5;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED = 3;
const MESSAGE_ENUM = 4;
const MESSAGE_ONEOF = 8;
const ENUM_VALUE = 2;
const SERVICE_METHOD = 2;

/**
 * The leading (else trailing) comment of every package, service, method,
 * message, field, oneof, enum and enum value in the set, keyed by fully
 * qualified name: "shop.catalog.v1.CatalogService.SearchProducts",
 * "shop.catalog.v1.Product.sku", "shop.orders.v1.OrderStatus.ORDER_STATUS_PENDING"
 * (values under their enum, unlike protobuf's scoping, so the key is
 * unambiguous), and "file:shop/catalog/v1/catalog.proto" for the comment on a
 * file's package statement. Comments are trimmed of the one space after "//".
 */
export function commentIndex(set: FileDescriptorSet): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of set.file) {
    const byPath = new Map<string, SourceCodeInfo_Location>();
    for (const loc of file.sourceCodeInfo?.location ?? []) byPath.set(loc.path.join("."), loc);
    const put = (name: string, path: number[]) => {
      const loc = byPath.get(path.join("."));
      const text = cleanComment(loc?.leadingComments || loc?.trailingComments || "");
      if (text) out.set(name, text);
    };
    const prefix = file.package ? `${file.package}.` : "";
    put(`file:${file.name}`, [FILE_PACKAGE]);
    const message = (m: DescriptorProto, name: string, path: number[]) => {
      put(name, path);
      m.field.forEach((f, i) => put(`${name}.${f.name}`, [...path, MESSAGE_FIELD, i]));
      m.oneofDecl.forEach((o, i) => put(`${name}.${o.name}`, [...path, MESSAGE_ONEOF, i]));
      m.nestedType.forEach((n, i) => message(n, `${name}.${n.name}`, [...path, MESSAGE_NESTED, i]));
      m.enumType.forEach((e, i) => enumeration(e, `${name}.${e.name}`, [...path, MESSAGE_ENUM, i]));
    };
    const enumeration = (e: EnumDescriptorProto, name: string, path: number[]) => {
      put(name, path);
      e.value.forEach((v, i) => put(`${name}.${v.name}`, [...path, ENUM_VALUE, i]));
    };
    file.messageType.forEach((m, i) => message(m, `${prefix}${m.name}`, [FILE_MESSAGE, i]));
    file.enumType.forEach((e, i) => enumeration(e, `${prefix}${e.name}`, [FILE_ENUM, i]));
    file.service.forEach((s, i) => {
      put(`${prefix}${s.name}`, [FILE_SERVICE, i]);
      s.method.forEach((m, j) => put(`${prefix}${s.name}.${m.name}`, [FILE_SERVICE, i, SERVICE_METHOD, j]));
    });
  }
  return out;
}

function cleanComment(raw: string): string {
  const lines = raw.split("\n").map((l) => (l.startsWith(" ") ? l.slice(1) : l).trimEnd());
  return lines.join("\n").trim();
}

// ---------------------------------------------------------------------------
// Schemas

/** The proto3 JSON mapping of the well-known types that have a special one. */
const wellKnown: Record<string, Json> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time", description: "An instant as an RFC 3339 string in UTC, for example \"2024-05-01T12:30:00Z\" (up to nine fractional digits)." },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: "A duration in seconds with an \"s\" suffix, for example \"1.5s\"." },
  "google.protobuf.Empty": { type: "object", description: "An empty message: {}." },
  "google.protobuf.Struct": { type: "object", additionalProperties: true, description: "Any JSON object." },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {}, description: "Any JSON array." },
  "google.protobuf.NullValue": { type: "null", description: "JSON null." },
  "google.protobuf.FieldMask": { type: "string", description: "Field paths in lowerCamelCase, comma-separated, for example \"displayName,email\"." },
  "google.protobuf.Any": { type: "object", required: ["@type"], properties: { "@type": { type: "string", description: "type.googleapis.com/<fully qualified message name>" } }, additionalProperties: true, description: "A message of any type, named by @type, with its fields (or, for a well-known type, its JSON under \"value\")." },
  "google.protobuf.DoubleValue": { type: ["number", "string"], pattern: "^(NaN|-?Infinity)$", description: "A double (or \"NaN\", \"Infinity\", \"-Infinity\"), or null." },
  "google.protobuf.FloatValue": { type: ["number", "string"], pattern: "^(NaN|-?Infinity)$", description: "A float (or \"NaN\", \"Infinity\", \"-Infinity\"), or null." },
  "google.protobuf.Int64Value": { type: "string", format: "int64", pattern: "^-?[0-9]+$", description: "A 64-bit integer as a decimal string, or null." },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64", pattern: "^[0-9]+$", description: "An unsigned 64-bit integer as a decimal string, or null." },
  "google.protobuf.Int32Value": { type: "integer", format: "int32", description: "A 32-bit integer, or null." },
  "google.protobuf.UInt32Value": { type: "integer", format: "uint32", minimum: 0, description: "An unsigned 32-bit integer, or null." },
  "google.protobuf.BoolValue": { type: "boolean", description: "A boolean, or null." },
  "google.protobuf.StringValue": { type: "string", description: "A string, or null." },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64", description: "Bytes as base64, or null." },
};

function scalarSchema(scalar: ScalarType): Json {
  switch (scalar) {
    // proto3 JSON writes the non-finite values as the strings "NaN", "Infinity" and "-Infinity".
    case ScalarType.DOUBLE:
      return { type: ["number", "string"], format: "double", pattern: "^(NaN|-?Infinity)$" };
    case ScalarType.FLOAT:
      return { type: ["number", "string"], format: "float", pattern: "^(NaN|-?Infinity)$" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // proto3 JSON writes 64-bit integers as strings (a JS number cannot hold them); parsers accept numbers too.
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
  }
}

const is64Bit = (scalar: ScalarType | undefined) =>
  scalar === ScalarType.INT64 || scalar === ScalarType.SINT64 || scalar === ScalarType.SFIXED64 || scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64;

const schemaRef = (typeName: string): Json => ({ $ref: `#/components/schemas/${typeName}` });

/** The component key a $ref points at: "shop.catalog.v1.Product". */
export function refName(schema: Json | undefined): string | undefined {
  const ref = schema?.$ref;
  return typeof ref === "string" && ref.startsWith("#/components/schemas/") ? ref.slice("#/components/schemas/".length) : undefined;
}

const slugPattern = "^[a-z0-9]+(-[a-z0-9]+)*$";

class SchemaSet {
  readonly schemas: Record<string, Json> = {};
  private readonly comments: ReadonlyMap<string, string>;
  constructor(comments: ReadonlyMap<string, string>) {
    this.comments = comments;
  }

  message(m: DescMessage): Json {
    if (!(m.typeName in this.schemas)) {
      const known = wellKnown[m.typeName];
      if (known) {
        this.schemas[m.typeName] = { ...known };
      } else {
        const schema: Json = { type: "object" };
        this.schemas[m.typeName] = schema; // before the fields: a message may contain itself
        Object.assign(schema, this.messageSchema(m));
      }
    }
    return schemaRef(m.typeName);
  }

  enumeration(e: DescEnum): Json {
    if (!(e.typeName in this.schemas)) {
      if (e.typeName === "google.protobuf.NullValue") {
        this.schemas[e.typeName] = { ...wellKnown[e.typeName] };
      } else {
        const descriptions: Record<string, string> = {};
        for (const v of e.values) {
          const c = this.comments.get(`${e.typeName}.${v.name}`);
          if (c) descriptions[v.name] = c;
        }
        const text = [this.comments.get(e.typeName), "Sent and answered by value name (parsers also accept the number)."].filter(Boolean).join("\n\n");
        this.schemas[e.typeName] = {
          type: "string",
          enum: e.values.map((v) => v.name),
          description: text,
          "x-enumDescriptions": descriptions,
          ...(e.deprecated ? { deprecated: true } : {}),
        };
      }
    }
    return schemaRef(e.typeName);
  }

  private messageSchema(m: DescMessage): Json {
    const properties: Record<string, Json> = {};
    const required: string[] = [];
    for (const field of m.fields) {
      const { schema, isRequired } = this.field(m, field);
      properties[field.jsonName] = schema;
      if (isRequired) required.push(field.jsonName);
    }
    const notes = m.oneofs.map((o) => `At most one of ${o.fields.map((f) => `\`${f.jsonName}\``).join(", ")} is set (oneof ${o.name}).`);
    const description = [this.comments.get(m.typeName), ...notes].filter(Boolean).join("\n\n");
    return {
      type: "object",
      ...(description ? { description } : {}),
      properties,
      ...(required.length > 0 ? { required } : {}),
      ...(m.deprecated ? { deprecated: true } : {}),
    };
  }

  private value(kind: "scalar" | "enum" | "message", field: DescField): Json {
    if (kind === "enum") return this.enumeration(field.enum!);
    if (kind === "message") return this.message(field.message!);
    return scalarSchema(field.scalar!);
  }

  private field(m: DescMessage, field: DescField): { schema: Json; isRequired: boolean } {
    const rules = hasOption(field, rulesOption) ? getOption(field, rulesOption) : undefined;
    const notes: string[] = [];
    let schema: Json;
    // Constraints on one value (a string, a number): the field's own, or each element of a repeated field.
    const valueRules = (value: Json, scalar: ScalarType | undefined) => {
      if (!rules) return value;
      const out: Json = { ...value };
      // `required` of a repeated field asks for one element, not for non-empty elements.
      const valueRequired = rules.required && field.fieldKind !== "list";
      if (scalar === ScalarType.STRING) {
        const minLen = Math.max(rules.minLen, valueRequired ? 1 : 0);
        if (minLen > 0) out.minLength = minLen;
        if (rules.maxLen > 0) out.maxLength = rules.maxLen;
        if (rules.format === Format.EMAIL) out.format = "email";
        if (rules.format === Format.UUID) out.format = "uuid";
        if (rules.format === Format.SLUG) out.pattern = slugPattern;
        if (rules.in.length > 0) out.enum = valueRequired ? [...rules.in] : ["", ...rules.in];
      } else if (scalar === ScalarType.BYTES) {
        if (rules.maxLen > 0) notes.push(`At most ${rules.maxLen} bytes.`);
      } else if (scalar !== undefined && !is64Bit(scalar)) {
        if (rules.hasMin) out.minimum = Number(rules.min);
        if (rules.hasMax) out.maximum = Number(rules.max);
        if (valueRequired) out.not = { const: 0 };
      } else if (is64Bit(scalar)) {
        if (rules.hasMin) notes.push(`At least ${rules.min}.`);
        if (rules.hasMax) notes.push(`At most ${rules.max}.`);
      }
      return out;
    };
    switch (field.fieldKind) {
      case "scalar":
        schema = valueRules(scalarSchema(field.scalar), field.scalar);
        break;
      case "enum":
        schema = this.enumeration(field.enum);
        break;
      case "message":
        schema = this.message(field.message);
        break;
      case "list": {
        const items = field.listKind === "scalar" ? valueRules(scalarSchema(field.scalar), field.scalar) : this.value(field.listKind, field);
        schema = { type: "array", items };
        if (rules?.required) schema.minItems = 1;
        if (rules && rules.maxItems > 0) schema.maxItems = rules.maxItems;
        break;
      }
      case "map": {
        const keyScalar = field.mapKey;
        const propertyNames: Json =
          keyScalar === ScalarType.BOOL ? { enum: ["true", "false"] } : keyScalar === ScalarType.STRING ? {} : { pattern: keyScalar === ScalarType.UINT32 || keyScalar === ScalarType.UINT64 || keyScalar === ScalarType.FIXED32 || keyScalar === ScalarType.FIXED64 ? "^[0-9]+$" : "^-?[0-9]+$" };
        schema = { type: "object", additionalProperties: this.value(field.mapKind, field), ...(Object.keys(propertyNames).length > 0 ? { propertyNames } : {}) };
        break;
      }
    }
    const comment = this.comments.get(`${m.typeName}.${field.name}`);
    if (hasOption(field, sensitiveOption) && getOption(field, sensitiveOption)) notes.push("Sensitive: never written to logs, traces or error messages.");
    if (field.oneof) notes.push(`Part of oneof ${field.oneof.name}.`);
    const description = [comment, ...notes].filter(Boolean).join("\n\n");
    if (description) schema = { ...schema, description };
    if (field.deprecated) schema = { ...schema, deprecated: true };
    return { schema, isRequired: rules?.required === true };
  }
}

// ---------------------------------------------------------------------------
// The document

const idempotencyName: Record<number, string> = {
  [MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN]: "IDEMPOTENCY_UNKNOWN",
  [MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS]: "NO_SIDE_EFFECTS",
  [MethodOptions_IdempotencyLevel.IDEMPOTENT]: "IDEMPOTENT",
};

function contractWords(method: DescMethod): string {
  const c = contractOf(method);
  const audience =
    c.audience === "public" ? "public: no token" : c.audience === "user" ? "a signed-in user (bearer token from Login) or a service" : "services only (a service token; operators: `make token`)";
  const retry = c.readOnly ? "a pure read (no side effects), safe to retry" : c.retrySafe ? "idempotent, safe to retry" : "not idempotent: a retry may act twice";
  const deadline = c.deadlineMs !== undefined ? `${c.deadlineMs} ms when the caller sends no connect-timeout-ms` : "none unless the caller sends connect-timeout-ms";
  return `Audience: ${audience}. Retries: ${retry}. Deadline: ${deadline}.`;
}

const connectParameters: Json[] = [
  {
    name: "connect-protocol-version",
    in: "header",
    required: false,
    description: "The Connect protocol version; \"1\" when sent. Optional for this server.",
    schema: { type: "string", enum: ["1"] },
  },
  {
    name: "connect-timeout-ms",
    in: "header",
    required: false,
    description: "The caller's deadline in milliseconds; without it the method's contract deadline applies.",
    schema: { type: "string", pattern: "^[0-9]{1,10}$" },
  },
];

/** A request with every field a rule requires, in a value its rules accept: what an example falls back to. */
export function requestFromRules(message: DescMessage, depth = 0): Json {
  const out: Json = {};
  if (depth > 3) return out;
  for (const field of message.fields) {
    const rules = hasOption(field, rulesOption) ? getOption(field, rulesOption) : undefined;
    if (!rules?.required) continue;
    const one = (): unknown => {
      if (field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")) return requestFromRules(field.message!, depth + 1);
      if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) return field.enum!.values.find((v) => v.number !== 0)?.name ?? field.enum!.values[0]?.name;
      const scalar = field.scalar;
      if (scalar === ScalarType.STRING) {
        if (rules.in.length > 0) return rules.in[0];
        if (rules.format === Format.EMAIL) return "ada@example.com";
        if (rules.format === Format.UUID) return "00000000-0000-4000-8000-000000000000";
        if (rules.format === Format.SLUG) return "hand-grinder";
        const length = Math.max(rules.minLen, 1, Math.min(7, rules.maxLen || 7));
        return "example".padEnd(length, "x").slice(0, length);
      }
      if (scalar === ScalarType.BOOL) return true;
      if (scalar === ScalarType.BYTES) return "AA==";
      // Non-zero (required) and within the range: 1 unless the range says otherwise.
      let n = 1n;
      if (rules.hasMin && rules.min > n) n = rules.min;
      if (rules.hasMax && rules.max < n) n = rules.max;
      return is64Bit(scalar) ? n.toString() : Number(n);
    };
    out[field.jsonName] = field.fieldKind === "list" ? [one()] : one();
  }
  return out;
}

/** The OpenAPI document of the unary methods of these services, in their order. */
export function buildOpenApi(services: readonly DescService[], options: OpenApiOptions): OpenApiDocument {
  const schemas = new SchemaSet(options.comments);
  const include = options.include ?? (() => true);
  const paths: OpenApiDocument["paths"] = {};
  const streaming: StreamingMethod[] = [];
  const tags: OpenApiDocument["tags"] = [];
  for (const service of services) {
    const methods = service.methods.filter(include);
    if (methods.length === 0) continue;
    const serviceComment = options.comments.get(service.typeName);
    const packageComment = options.comments.get(`file:${service.file.proto.name}`);
    const tagDescription = [serviceComment, packageComment && packageComment !== serviceComment ? packageComment : undefined].filter(Boolean).join("\n\n");
    tags.push({ name: service.typeName, ...(tagDescription ? { description: tagDescription } : {}) });
    const headers = options.headersFor?.(service) ?? [];
    for (const method of methods) {
      const c = contractOf(method);
      const comment = options.comments.get(`${service.typeName}.${method.name}`);
      const description = [comment, contractWords(method)].filter(Boolean).join("\n\n");
      if (method.methodKind !== "unary") {
        streaming.push({
          path: c.path,
          service: service.typeName,
          method: method.name,
          kind: method.methodKind,
          description,
          audience: c.audience,
          ...(c.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {}),
          request: method.methodKind === "server_streaming" ? schemas.message(method.input) : { $comment: `${method.input.typeName} (not described here)` },
          response: method.methodKind === "server_streaming" ? schemas.message(method.output) : { $comment: `${method.output.typeName} (not described here)` },
          ...(method.methodKind === "server_streaming" && options.exampleFor?.(method) ? { example: options.exampleFor(method) } : {}),
        });
        continue;
      }
      const example = options.exampleFor?.(method) ?? { body: requestFromRules(method.input), answers: "any", note: "An example made from the field rules: it answers JSON, a response or a Connect error." };
      const operation: Operation = {
        operationId: `${service.typeName}.${method.name}`,
        tags: [service.typeName],
        summary: `${service.name}.${method.name}`,
        description,
        parameters: [...connectParameters, ...headers],
        requestBody: {
          required: true,
          content: { "application/json": { schema: schemas.message(method.input), example: example.body } },
        },
        responses: {
          "200": {
            description: `The ${method.output.name} message in proto3 JSON. Fields at their default value (0, "", false, empty lists) are left out.`,
            content: { "application/json": { schema: schemas.message(method.output) } },
          },
          default: {
            description: "A Connect error: the HTTP status follows the code (see connect.error).",
            content: { "application/json": { schema: { $ref: CONNECT_ERROR_REF } } },
          },
        },
        ...(c.audience === "public" ? {} : { security: [{ bearer: [] }] }),
        ...(method.deprecated || service.deprecated ? { deprecated: true } : {}),
        "x-shop-audience": c.audience,
        "x-shop-idempotency": idempotencyName[method.idempotency] ?? String(method.idempotency),
        ...(c.deadlineMs !== undefined ? { "x-shop-deadline-ms": c.deadlineMs } : {}),
        "x-shop-example": { answers: example.answers, ...(example.note ? { note: example.note } : {}), ...(example.headers ? { headers: { ...example.headers } } : {}) },
      };
      paths[c.path] = { post: operation };
    }
  }
  const codes = CONNECT_CODES.map(([code, status]) => `- \`${code}\`: HTTP ${status}`).join("\n");
  schemas.schemas["connect.error"] = {
    type: "object",
    description: `The body of every error answer of a unary Connect call (content-type application/json). The HTTP status follows the code:\n\n${codes}`,
    required: ["code"],
    properties: {
      code: { type: "string", enum: CONNECT_CODES.map(([code]) => code), description: "The gRPC status code in snake case." },
      message: { type: "string", description: "What went wrong, for a developer. Validation errors name every violated field: \"invalid request: email: must be a valid email address\"." },
      details: { type: "array", items: { $ref: "#/components/schemas/connect.error.detail" }, description: "Error details, when there are any." },
    },
  };
  schemas.schemas["connect.error.detail"] = {
    type: "object",
    required: ["type", "value"],
    properties: {
      type: { type: "string", description: "Fully qualified protobuf message name of the detail, for example google.rpc.RetryInfo." },
      value: { type: "string", contentEncoding: "base64", description: "The detail message in protobuf binary, base64 without padding." },
      debug: { type: "object", additionalProperties: true, description: "The detail as JSON, when the server adds it." },
    },
  };
  // The API's version: the package versions of the services with paths ("v1"; "v1+v2" while a v2 stands beside v1).
  const withPaths = services.filter((s) => s.methods.some((m) => `/${s.typeName}/${m.name}` in paths));
  const versions = [...new Set(withPaths.map((s) => /\.(v\d+\w*)$/.exec(s.file.proto.package)?.[1]).filter(Boolean))].sort();
  return {
    openapi: "3.1.0",
    info: { title: options.title, version: versions.join("+") || "0", description: options.description },
    servers: [{ url: "/", description: "The origin this document is served from." }],
    tags,
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(schemas.schemas).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "authorization: Bearer <token>. A user token is what shop.users.v1.UserService/Login answers; a service (operator) token comes from `make token`.",
        },
      },
    },
    "x-shop-streaming": streaming,
  };
}
