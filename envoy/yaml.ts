// A YAML writer for the plain data an Envoy config is: objects, arrays,
// strings, numbers and booleans. Deterministic (keys keep their insertion
// order), so a committed config changes only when what it says changes.
// Strings that YAML could read as anything else (true, 0s, "@type", a
// string with ": ") are written double-quoted, which is JSON's syntax and
// valid YAML; everything else is written plain.

export type YamlValue = string | number | boolean | null | readonly YamlValue[] | { readonly [key: string]: YamlValue | undefined };

// Plain scalars: letters, digits and a few safe punctuation marks, starting
// with a letter, "_" or "/"; never a word YAML 1.1 reads as a boolean or null.
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;

function scalar(value: string | number | boolean | null): string {
  if (value === null) return "null";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as YAML`);
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
}

const isScalar = (value: YamlValue): value is string | number | boolean | null => value === null || typeof value !== "object";

function entries(value: { readonly [key: string]: YamlValue | undefined }): Array<[string, YamlValue]> {
  return Object.entries(value).filter((e): e is [string, YamlValue] => e[1] !== undefined);
}

function isEmpty(value: YamlValue): boolean {
  return Array.isArray(value) ? value.length === 0 : !isScalar(value) && entries(value as Record<string, YamlValue>).length === 0;
}

function block(value: YamlValue, indent: string): string[] {
  if (Array.isArray(value)) {
    const lines: string[] = [];
    for (const item of value as readonly YamlValue[]) {
      if (isScalar(item) || isEmpty(item)) {
        lines.push(`${indent}- ${inline(item)}`);
        continue;
      }
      // The first line of the item shares the dash; the rest align under it.
      const inner = block(item, `${indent}  `);
      lines.push(`${indent}- ${inner[0].slice(indent.length + 2)}`, ...inner.slice(1));
    }
    return lines;
  }
  const lines: string[] = [];
  for (const [key, v] of entries(value as Record<string, YamlValue>)) {
    const k = scalar(key);
    if (isScalar(v) || isEmpty(v)) lines.push(`${indent}${k}: ${inline(v)}`);
    else lines.push(`${indent}${k}:`, ...block(v, `${indent}  `));
  }
  return lines;
}

function inline(value: YamlValue): string {
  if (isScalar(value)) return scalar(value);
  return Array.isArray(value) ? "[]" : "{}";
}

/** The document as YAML text, ending with a newline. */
export function toYaml(document: YamlValue, header?: string): string {
  const comment = header ? header.split("\n").map((l) => (l ? `# ${l}` : "#")).join("\n") + "\n" : "";
  return `${comment}${block(document, "").join("\n")}\n`;
}
