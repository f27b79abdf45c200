// What the services' own code says about their calls, read from
// services/<name>/**/*.ts (tests and declaration files left out) without
// running it. It guarantees two findings:
//
//   - every client a service asks the platform's factory for
//     (`ctx.clients.client(CatalogService)`), followed through the file's
//     imports to the generated service it names; one it cannot follow is
//     reported as such, never skipped;
//   - per handler of the service's own methods, the callee methods it may
//     reach: a callee method named in its body (`catalog.quotePrice(`), or in
//     a function of the service it calls by name, transitively.
//
// The second is by name, so it errs towards more calls, never fewer: a helper
// another handler shares, or a name two functions share, links both. A
// service that asks for a client and names none of its methods is taken to
// call every one of them from every handler.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import type { Topology } from "@shop/platform";

export interface ClientRequest {
  /** The topology service whose code asks. */
  readonly caller: string;
  /** Relative to the scan's root: "services/orders/index.ts". */
  readonly file: string;
  readonly line: number;
  /** As written: "CatalogService", "catalogPb.CatalogService". */
  readonly identifier: string;
  /** The generated service it names; undefined when the scan cannot tell. */
  readonly service: DescService | undefined;
}

export interface SourceFacts {
  /** Topology services whose folder was read. */
  readonly scanned: ReadonlySet<string>;
  readonly clients: readonly ClientRequest[];
  /** Per handler (the caller's method path, "/shop.orders.v1.OrderService/CreateOrder"), the callee method paths it may reach. */
  readonly reaches: ReadonlyMap<string, ReadonlySet<string>>;
  /** Callee methods named in a service's code where no handler reaches them (event handlers, timers): calls outside any path from the edge. */
  readonly outsideHandlers: ReadonlyArray<{ readonly caller: string; readonly method: string; readonly file: string; readonly line: number }>;
}

export interface ScanOptions {
  /** The folder holding one folder per topology service: services/. */
  servicesDir: string;
  topology: Topology;
  /** Each topology service's own gRPC services (envoy/contracts.ts loadServiceDescriptors). */
  descriptors: ReadonlyMap<string, readonly DescService[]>;
  /** Files are named relative to this. Default: the folder above servicesDir. */
  root?: string;
}

export async function scanServiceSources(options: ScanOptions): Promise<SourceFacts> {
  const root = options.root ?? join(options.servicesDir, "..");
  const scanned = new Set<string>();
  const clients: ClientRequest[] = [];
  const reaches = new Map<string, Set<string>>();
  const outsideHandlers: Array<{ caller: string; method: string; file: string; line: number }> = [];
  for (const service of Object.keys(options.topology.services)) {
    const folder = join(options.servicesDir, service);
    if (!existsSync(folder)) continue;
    scanned.add(service);
    const files = sourceFiles(folder).map((path) => {
      const text = readFileSync(path, "utf8");
      return { path, name: relative(root, path), text, code: codeOnly(text) };
    });

    const targets = new Map<string, DescService>();
    for (const file of files) {
      for (const request of clientRequests(file.code)) {
        const resolved = await resolveService(file.path, file.text, request.identifier);
        clients.push({ caller: service, file: file.name, line: lineOf(file.text, request.at), identifier: request.identifier, service: resolved });
        if (resolved) targets.set(resolved.typeName, resolved);
      }
    }

    const regions = files.flatMap((file, index) => functionRegions(file.code).map((r) => ({ ...r, file: index })));
    const handlers = (options.descriptors.get(service) ?? []).flatMap((s) => s.methods).map((m) => ({ method: m, path: `/${m.parent.typeName}/${m.name}` }));
    const calledBy = regions.map((r) => calledNames(files[r.file].code.slice(r.bodyStart, r.bodyEnd)));
    const reachable = (start: number[]): Set<number> => {
      const seen = new Set(start);
      const queue = [...start];
      while (queue.length > 0) {
        const next = queue.pop()!;
        for (const name of calledBy[next]) {
          regions.forEach((r, i) => {
            if (r.name === name && !seen.has(i)) {
              seen.add(i);
              queue.push(i);
            }
          });
        }
      }
      return seen;
    };
    const handlerRegions = handlers.map((h) => reachable(regions.flatMap((r, i) => (r.name === h.method.localName ? [i] : []))));
    for (const h of handlers) reaches.set(h.path, new Set());

    for (const target of targets.values()) {
      let named = false;
      for (const callee of target.methods) {
        const calleePath = `/${target.typeName}/${callee.name}`;
        const pattern = new RegExp(`\\.\\s*${callee.localName}\\s*\\(`, "g");
        files.forEach((file, fileIndex) => {
          for (const match of file.code.matchAll(pattern)) {
            named = true;
            const at = match.index;
            const around = regions.flatMap((r, i) => (r.file === fileIndex && r.bodyStart <= at && at < r.bodyEnd ? [i] : []));
            let reached = false;
            handlers.forEach((h, hi) => {
              if (around.some((i) => handlerRegions[hi].has(i))) {
                reaches.get(h.path)!.add(calleePath);
                reached = true;
              }
            });
            if (!reached) outsideHandlers.push({ caller: service, method: calleePath, file: file.name, line: lineOf(file.text, at) });
          }
        });
      }
      if (!named) for (const h of handlers) for (const callee of target.methods) reaches.get(h.path)!.add(`/${target.typeName}/${callee.name}`);
    }
  }
  return { scanned, clients, reaches, outsideHandlers };
}

function sourceFiles(folder: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules") out.push(...sourceFiles(path));
    } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") && !entry.name.endsWith(".d.ts")) {
      out.push(path);
    }
  }
  return out;
}

function lineOf(text: string, at: number): number {
  let line = 1;
  for (let i = 0; i < at; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** `<anything>.client(Identifier)` calls: how a service asks its ServiceContext's factory for a client. */
function clientRequests(code: string): Array<{ identifier: string; at: number }> {
  return [...code.matchAll(/\.\s*client\s*\(\s*([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)?)\s*[,)]/g)].map((m) => ({ identifier: m[1].replace(/\s+/g, ""), at: m.index }));
}

const moduleCache = new Map<string, Promise<Record<string, unknown> | undefined>>();

/** The generated service an identifier names, through the file's `import { X }` or `import * as ns`; undefined when it does not lead to one. */
async function resolveService(file: string, text: string, identifier: string): Promise<DescService | undefined> {
  const [head, member] = identifier.split(".");
  let specifier: string | undefined;
  let exported: string | undefined;
  for (const m of text.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*(["'])([^"']+)\3/g)) {
    if (m[1]) continue; // a type-only import names no value
    for (const part of m[2].split(",")) {
      const names = /^\s*(type\s+)?([\w$]+)(?:\s+as\s+([\w$]+))?\s*$/.exec(part);
      if (names && !names[1] && (names[3] ?? names[2]) === head) {
        specifier = m[4];
        exported = names[2];
      }
    }
  }
  if (member !== undefined) {
    exported = undefined;
    for (const m of text.matchAll(/import\s+\*\s+as\s+([\w$]+)\s+from\s*(["'])([^"']+)\2/g)) {
      if (m[1] === head) {
        specifier = m[3];
        exported = member;
      }
    }
  }
  if (specifier === undefined || exported === undefined) return undefined;
  let url: string;
  try {
    url = specifier.startsWith(".") ? new URL(specifier, pathToFileURL(file)).href : pathToFileURL(createRequire(file).resolve(specifier)).href;
  } catch {
    return undefined; // not resolvable from the file: reported as a client the check cannot follow
  }
  let loaded = moduleCache.get(url);
  if (!loaded) {
    loaded = import(url).then(
      (m: Record<string, unknown>) => m,
      () => undefined,
    );
    moduleCache.set(url, loaded);
  }
  const value = (await loaded)?.[exported];
  return isService(value) ? value : undefined;
}

function isService(value: unknown): value is DescService {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service";
}

const NOT_FUNCTIONS = new Set(["if", "for", "while", "switch", "catch", "with", "return", "typeof", "await", "new", "function", "super", "import", "yield", "void", "delete", "in", "of"]);

interface Region {
  readonly name: string;
  readonly bodyStart: number;
  readonly bodyEnd: number;
}

/**
 * Named functions in code: declarations (`function quote(`), methods
 * (`async createOrder(req) {`), and functions or arrows given to a name or a
 * property (`const quote = async (req) => …`, `getStock: (req) => …`).
 */
function functionRegions(code: string): Region[] {
  const regions: Region[] = [];
  for (const m of code.matchAll(/[A-Za-z_$][\w$]*/g)) {
    const name = m[0];
    if (NOT_FUNCTIONS.has(name) || (m.index > 0 && /[\w$.]/.test(code[m.index - 1]))) continue;
    let i = skipSpace(code, m.index + name.length);
    if (code[i] === "(") {
      // name(params) [: type] {   a method or a declaration (a call is never followed by a block)
      const close = matching(code, i);
      if (close < 0) continue;
      const body = afterSignature(code, close + 1);
      if (body !== undefined && code[body] === "{") regions.push({ name, bodyStart: body, bodyEnd: matching(code, body) + 1 });
      continue;
    }
    if (code[i] === "=" && code[i + 1] !== "=" && code[i + 1] !== ">") i = skipSpace(code, i + 1);
    else if (code[i] === ":") i = skipSpace(code, i + 1);
    else continue;
    if (code.startsWith("async", i) && !/[\w$]/.test(code[i + 5] ?? "")) i = skipSpace(code, i + 5);
    if (code.startsWith("function", i) && !/[\w$]/.test(code[i + 8] ?? "")) {
      const open = code.indexOf("(", i);
      const close = open < 0 ? -1 : matching(code, open);
      const body = close < 0 ? undefined : afterSignature(code, close + 1);
      if (body !== undefined && code[body] === "{") regions.push({ name, bodyStart: body, bodyEnd: matching(code, body) + 1 });
      continue;
    }
    let arrow: number | undefined;
    if (code[i] === "(") {
      const close = matching(code, i);
      if (close < 0) continue;
      arrow = afterSignature(code, close + 1, true);
    } else {
      const param = /^[A-Za-z_$][\w$]*\s*=>/.exec(code.slice(i, i + 80));
      if (param) arrow = i + param[0].length - 2;
    }
    if (arrow === undefined || !code.startsWith("=>", arrow)) continue;
    const start = skipSpace(code, arrow + 2);
    const end = code[start] === "{" ? matching(code, start) + 1 : expressionEnd(code, start);
    if (end > start) regions.push({ name, bodyStart: start, bodyEnd: end });
  }
  return regions;
}

/** Names called in a body, plain or as a member: `quote(`, `transitions.confirm(`. */
function calledNames(body: string): Set<string> {
  return new Set([...body.matchAll(/([A-Za-z_$][\w$]*)\s*\(/g)].map((m) => m[1]).filter((n) => !NOT_FUNCTIONS.has(n)));
}

function skipSpace(code: string, i: number): number {
  while (i < code.length && /\s/.test(code[i])) i++;
  return i;
}

/**
 * After a parameter list: the position of the body's `{` (or `=>` when
 * arrow), past an optional return type; undefined when neither follows.
 */
function afterSignature(code: string, i: number, arrow = false): number | undefined {
  i = skipSpace(code, i);
  if (code[i] === ":") {
    let depth = 0;
    for (i++; i < code.length; i++) {
      const c = code[i];
      if (c === "(" || c === "[" || c === "<") depth++;
      else if ((c === ")" || c === "]" || c === ">") && code[i - 1] !== "=") depth--;
      else if (depth === 0 && (arrow ? code.startsWith("=>", i) : c === "{")) return i;
      else if (depth === 0 && (c === ";" || c === "," || c === "}" || c === "=")) return undefined;
    }
    return undefined;
  }
  if (arrow) return code.startsWith("=>", i) ? i : undefined;
  return i;
}

/** The index of the bracket closing the one at `open`, or -1. */
function matching(code: string, open: number): number {
  const pairs: Record<string, string> = { "(": ")", "[": "]", "{": "}" };
  const stack: string[] = [];
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c in pairs) stack.push(pairs[c]);
    else if (c === ")" || c === "]" || c === "}") {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i;
    }
  }
  return -1;
}

/** Where an arrow's expression body ends: the first `,` `;` or unmatched closing bracket outside brackets. */
function expressionEnd(code: string, i: number): number {
  let depth = 0;
  for (; i < code.length; i++) {
    const c = code[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) return i;
      depth--;
    } else if (depth === 0 && (c === "," || c === ";")) return i;
  }
  return i;
}

const REGEX_AFTER_WORD = new Set(["return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw", "yield", "await"]);

/**
 * The code with comments, string and template contents and regular
 * expressions blanked out (newlines kept, so offsets and lines stay), so
 * that brackets and names in text do not count.
 */
export function codeOnly(text: string): string {
  const out = text.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  const skipString = (i: number): number => {
    const quote = text[i];
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === quote || text[i] === "\n") return i + 1;
    }
    return i;
  };
  // Past a template literal from its opening backtick, expressions and nested templates included.
  const skipTemplate = (i: number): number => {
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === "`") return i + 1;
      else if (text[i] === "$" && text[i + 1] === "{") {
        let depth = 1;
        for (i += 2; i < text.length && depth > 0; i++) {
          const c = text[i];
          if (c === "{") depth++;
          else if (c === "}") depth--;
          else if (c === "'" || c === '"') i = skipString(i) - 1;
          else if (c === "`") i = skipTemplate(i) - 1;
        }
        i--;
      }
    }
    return i;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i);
      const to = end < 0 ? text.length : end;
      blank(i, to);
      i = to;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      const to = end < 0 ? text.length : end + 2;
      blank(i, to);
      i = to;
    } else if (c === "'" || c === '"') {
      const to = skipString(i);
      blank(i + 1, to - 1);
      i = to;
    } else if (c === "`") {
      const to = skipTemplate(i);
      blank(i + 1, to - 1);
      i = to;
    } else if (c === "/" && startsRegex(out, i)) {
      let k = i + 1;
      let inClass = false;
      for (; k < text.length && text[k] !== "\n"; k++) {
        if (text[k] === "\\") k++;
        else if (text[k] === "[") inClass = true;
        else if (text[k] === "]") inClass = false;
        else if (text[k] === "/" && !inClass) break;
      }
      blank(i + 1, k);
      i = k + 1;
    } else {
      i++;
    }
  }
  return out.join("");
}

/** A `/` starts a regular expression where a value is expected: after an operator, an opening bracket, or a keyword like return. */
function startsRegex(out: readonly string[], i: number): boolean {
  let k = i - 1;
  while (k >= 0 && /\s/.test(out[k])) k--;
  if (k < 0) return true;
  const prev = out[k];
  if ("(,=:[!&|?{};+-*%<>~^".includes(prev)) return true;
  if (/[\w$]/.test(prev)) {
    let start = k;
    while (start > 0 && /[\w$]/.test(out[start - 1])) start--;
    return REGEX_AFTER_WORD.has(out.slice(start, k + 1).join(""));
  }
  return false;
}
