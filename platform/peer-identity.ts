// Who called this instance, as its sidecar verified it: the SPIFFE ID of the
// caller's mesh certificate, which the sidecar's inbound listener puts in
// x-forwarded-client-cert (forward_client_cert_details SANITIZE_SET with the
// URI: envoy/mtls.ts). What it guarantees:
//
// - peerService answers a service name only for a header that holds exactly
//   one element with exactly one URI, and only when that URI is a SPIFFE ID
//   spiffe://<trust domain>/ns/<namespace>/sa/<name> of the expected trust
//   domain and namespace (default shop.local and shop). Anything else (no
//   header, two elements as an APPEND_FORWARD chain would give, a malformed
//   value, another trust domain, a path with extra segments) is undefined:
//   fail closed, never a guess.
// - The header is worth trusting only behind the mesh's sidecar: the inbound
//   listener replaces whatever a client sent, and the app listens on
//   127.0.0.1 only. Without the sidecar (make run, tests), there is none.

export const XFCC_HEADER = "x-forwarded-client-cert";
export const DEFAULT_TRUST_DOMAIN = "shop.local";
export const DEFAULT_SPIFFE_NAMESPACE = "shop";

export interface PeerIdentityOptions {
  /** Default "shop.local". */
  trustDomain?: string;
  /** Default "shop". */
  namespace?: string;
}

/** One element of the header (one proxy's view of one client certificate): keys in lower case ("by", "hash", "uri", "dns", "subject"), each with its values in order. */
export type XfccElement = ReadonlyMap<string, readonly string[]>;

/**
 * Splits text at `separator` outside double quotes, and unquotes each part
 * whose value is quoted. Undefined when a quote is left open.
 */
function splitOutsideQuotes(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted && ch === "\\" && i + 1 < text.length) {
      current += ch + text[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === separator && !quoted) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  if (quoted) return undefined;
  parts.push(current);
  return parts;
}

function unquote(value: string): string | undefined {
  if (!value.startsWith('"')) return value.includes('"') ? undefined : value;
  if (value.length < 2 || !value.endsWith('"')) return undefined;
  return value.slice(1, -1).replace(/\\(.)/g, "$1");
}

/**
 * The elements of an x-forwarded-client-cert value, as Envoy writes it:
 * elements separated by ",", key=value pairs by ";", values double-quoted
 * when they hold one of `,;="`. Undefined when it does not parse.
 */
export function parseXfcc(value: string): XfccElement[] | undefined {
  const elements = splitOutsideQuotes(value, ",");
  if (!elements) return undefined;
  const out: XfccElement[] = [];
  for (const element of elements) {
    const pairs = splitOutsideQuotes(element.trim(), ";");
    if (!pairs) return undefined;
    const map = new Map<string, string[]>();
    for (const pair of pairs) {
      const eq = pair.indexOf("=");
      if (eq <= 0) return undefined;
      const key = pair.slice(0, eq).trim().toLowerCase();
      const v = unquote(pair.slice(eq + 1).trim());
      if (v === undefined || !/^[a-z]+$/.test(key)) return undefined;
      map.set(key, [...(map.get(key) ?? []), v]);
    }
    out.push(map);
  }
  return out;
}

/** "orders" for spiffe://shop.local/ns/shop/sa/orders in the expected trust domain and namespace; undefined otherwise. */
export function spiffeServiceOf(uri: string, options: PeerIdentityOptions = {}): string | undefined {
  const prefix = `spiffe://${options.trustDomain ?? DEFAULT_TRUST_DOMAIN}/ns/${options.namespace ?? DEFAULT_SPIFFE_NAMESPACE}/sa/`;
  if (!uri.startsWith(prefix)) return undefined;
  const name = uri.slice(prefix.length);
  return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name) ? name : undefined;
}

/**
 * The service (or "edge", "edge-backend") whose mesh certificate made this
 * call, from the request headers or the header's value; undefined unless
 * the header says so unambiguously (see the top of this file).
 */
export function peerService(headers: Headers | string | null | undefined, options: PeerIdentityOptions = {}): string | undefined {
  const value = typeof headers === "string" || headers == null ? headers : headers.get(XFCC_HEADER);
  if (!value) return undefined;
  const elements = parseXfcc(value);
  if (!elements || elements.length !== 1) return undefined;
  const uris = elements[0].get("uri") ?? [];
  if (uris.length !== 1) return undefined;
  return spiffeServiceOf(uris[0], options);
}
