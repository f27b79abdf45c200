// The edge's development certificate for `make mesh` with EDGE_TLS=1, made
// with the machine's `openssl`. What it guarantees:
//
// - <dir>/tls.crt and <dir>/tls.key (0600): a self-signed EC P-256
//   certificate for localhost, 127.0.0.1 and ::1 (its subject alternative
//   names), usable for TLS servers, valid 30 days. It is its own trust
//   anchor: `grpcurl -cacert <dir>/tls.crt 127.0.0.1:8080 list`,
//   `curl --cacert <dir>/tls.crt https://127.0.0.1:8080/`, or Node's
//   tls/http2 with `ca`.
// - ensureEdgeCert keeps a pair that is still good (the key matches, the
//   names are there, more than a day left) and makes a new one otherwise, so
//   a client that trusts it once keeps trusting it across restarts.
// - Only for development on loopback: in Kubernetes the edge reads a real
//   certificate from the Secret the chart mounts (envoy/edge.ts EDGE_TLS_FILES).
//
//   node runner/edge-tls.ts [dir]     default .mesh/edge-tls
import { execFileSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { EdgeTls } from "../envoy/edge.ts";

/** The names a local client may use to reach the edge. */
export const EDGE_DEV_NAMES = { dns: ["localhost"], ip: ["127.0.0.1", "::1"] } as const;
const DAYS = 30;
const RENEW_BEFORE_MS = 24 * 3600_000;

/** The certificate's files in dir. */
export function edgeCertFiles(dir: string): EdgeTls {
  return { certificateChain: join(dir, "tls.crt"), privateKey: join(dir, "tls.key") };
}

/** Why the pair in files is not good any more, or undefined when it is. */
function problemWith(files: EdgeTls): string | undefined {
  if (!existsSync(files.certificateChain) || !existsSync(files.privateKey)) return "missing";
  try {
    const cert = new X509Certificate(readFileSync(files.certificateChain));
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(files.privateKey)))) return "the key does not match";
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return "expires within a day";
    const names = cert.subjectAltName ?? "";
    const wanted = [...EDGE_DEV_NAMES.dns.map((d) => `DNS:${d}`), ...EDGE_DEV_NAMES.ip.map((ip) => `IP Address:${ip === "::1" ? "0:0:0:0:0:0:0:1" : ip}`)];
    const missing = wanted.filter((w) => !names.split(", ").some((n) => n.toUpperCase() === w.toUpperCase()));
    return missing.length > 0 ? `lacks ${missing.join(", ")}` : undefined;
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
}

/**
 * The edge's development certificate in dir: the one there when it is still
 * good, else a new one (written beside, then renamed into place).
 */
export function ensureEdgeCert(dir: string): EdgeTls & { created: boolean } {
  const files = edgeCertFiles(dir);
  if (problemWith(files) === undefined) return { ...files, created: false };
  mkdirSync(dir, { recursive: true });
  const next = { certificateChain: `${files.certificateChain}.new`, privateKey: `${files.privateKey}.new` };
  const san = [...EDGE_DEV_NAMES.dns.map((d) => `DNS:${d}`), ...EDGE_DEV_NAMES.ip.map((ip) => `IP:${ip}`)].join(",");
  try {
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", next.privateKey, "-out", next.certificateChain, "-days", String(DAYS),
        "-subj", "/CN=localhost/O=shop development edge",
        "-addext", `subjectAltName=${san}`,
        "-addext", "extendedKeyUsage=serverAuth",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (err) {
    rmSync(next.certificateChain, { force: true });
    rmSync(next.privateKey, { force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    throw new Error(e.code === "ENOENT" ? "edge TLS needs `openssl` on the PATH to make a development certificate" : `openssl could not make the edge's certificate: ${e.stderr?.toString().trim() ?? e.message}`);
  }
  chmodSync(next.privateKey, 0o600);
  renameSync(next.privateKey, files.privateKey);
  renameSync(next.certificateChain, files.certificateChain);
  return { ...files, created: true };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = resolve(process.argv[2] ?? ".mesh/edge-tls");
  const made = ensureEdgeCert(dir);
  process.stdout.write(`${made.created ? "made" : "kept"} ${made.certificateChain} and ${made.privateKey}\n`);
}
