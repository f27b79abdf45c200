// The mesh's own certificate authority and one certificate per identity, made
// with the machine's `openssl`, for mTLS between every sidecar, the edge and
// the edge backend. What it guarantees:
//
// - One CA (EC P-256, ten years) under <dir>/ca.crt and <dir>/ca.key (0600):
//   it signs every leaf and every proxy trusts only it.
// - One leaf per identity (each topology service, "edge", "edge-backend"),
//   EC P-256, 90 days, usable as server and client, whose only subject
//   alternative name is its SPIFFE ID spiffe://<trust domain>/ns/<namespace>/sa/<identity>
//   (default spiffe://shop.local/ns/shop/sa/<identity>). The proxies' RBAC and
//   SAN checks read that URI, nothing else.
// - Each identity's folder looks as Kubernetes mounts a Secret of type
//   kubernetes.io/tls with ca.crt: <dir>/<identity>/tls.crt, tls.key and
//   ca.crt are symlinks into ..data, itself a symlink to a dated folder. A
//   re-issue writes a new dated folder and renames a new ..data over the old
//   one: one atomic rename, so a reader (Envoy's SDS watch on the folder)
//   never sees a certificate beside another certificate's key.
// - ensureMeshCerts keeps what is valid (CA and key match, leaf signed by the
//   CA, the right SAN, its key, more than a day left) and makes anew only what
//   is missing or not valid; a new CA re-issues every leaf.
//
//   node runner/mesh-certs.ts [--dir .mesh/certs] [--reissue <identity>]
import { execFileSync } from "node:child_process";
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_TRUST_DOMAIN, EDGE_BACKEND_IDENTITY, EDGE_IDENTITY, spiffeId, TLS_FILES } from "../envoy/mtls.ts";
import type { SpiffeOptions } from "../envoy/mtls.ts";

export { DEFAULT_SPIFFE_NAMESPACE, DEFAULT_TRUST_DOMAIN, EDGE_BACKEND_IDENTITY, EDGE_IDENTITY, spiffeId, TLS_FILES } from "../envoy/mtls.ts";
export type { SpiffeOptions };

const CA_DAYS = 3650;
const LEAF_DAYS = 90;
/** A leaf with less than this left is made anew at the next start. */
const RENEW_BEFORE_MS = 24 * 3600_000;

/** Every identity of a mesh: its services, the edge and the edge backend. */
export function meshIdentities(services: readonly string[]): string[] {
  return [...services, EDGE_IDENTITY, EDGE_BACKEND_IDENTITY];
}

/** The folder of one identity: <dir>/<identity>, with tls.crt, tls.key, ca.crt. */
export function identityDir(dir: string, identity: string): string {
  return join(dir, identity);
}

export interface IssuedCertificate {
  readonly identity: string;
  readonly uri: string;
  /** Hex, upper case, as node:crypto and node:tls print it. */
  readonly serial: string;
  readonly validTo: string;
}

export interface EnsureResult {
  readonly caCreated: boolean;
  /** Identities whose certificate was made (missing or not valid); the others were kept. */
  readonly issued: readonly string[];
  readonly kept: readonly string[];
}

function openssl(args: readonly string[], input?: string): string {
  try {
    return execFileSync("openssl", args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT") throw new Error("openssl is not on the PATH: the mesh certificates are made with it (apt-get install openssl)");
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

function validIdentity(identity: string): void {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(identity)) throw new Error(`not a usable identity for a certificate: ${JSON.stringify(identity)}`);
}

/** A serial of 127 random bits (positive, as RFC 5280 wants), in hex. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return bytes.toString("hex");
}

function caValid(dir: string): boolean {
  try {
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    const key = createPrivateKey(readFileSync(join(dir, "ca.key")));
    return ca.ca && ca.checkPrivateKey(key) && Date.parse(ca.validTo) - Date.now() > 30 * RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

function createCa(dir: string, options: SpiffeOptions): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = join(dir, "ca.key.new");
  const crt = join(dir, "ca.crt.new");
  openssl([
    "req", "-x509", "-new",
    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", crt,
    "-days", String(CA_DAYS),
    "-set_serial", `0x${randomSerial()}`,
    "-subj", `/O=shop/CN=shop mesh CA (${options.trustDomain ?? DEFAULT_TRUST_DOMAIN})`,
    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  chmodSync(key, 0o600);
  renameSync(key, join(dir, "ca.key"));
  renameSync(crt, join(dir, "ca.crt"));
}

/** The certificate of one identity as its folder holds it now; undefined when there is none or it does not parse. */
export function readIssued(dir: string, identity: string, options: SpiffeOptions = {}): IssuedCertificate | undefined {
  try {
    const cert = new X509Certificate(readFileSync(join(identityDir(dir, identity), TLS_FILES.cert)));
    return { identity, uri: spiffeId(identity, options), serial: cert.serialNumber, validTo: cert.validTo };
  } catch {
    return undefined;
  }
}

function leafValid(dir: string, identity: string, options: SpiffeOptions): boolean {
  try {
    const folder = identityDir(dir, identity);
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    const cert = new X509Certificate(readFileSync(join(folder, TLS_FILES.cert)));
    const key = createPrivateKey(readFileSync(join(folder, TLS_FILES.key)));
    const bundled = readFileSync(join(folder, TLS_FILES.ca), "utf8");
    return (
      cert.checkIssued(ca) &&
      cert.verify(ca.publicKey) &&
      cert.checkPrivateKey(key) &&
      cert.subjectAltName === `URI:${spiffeId(identity, options)}` &&
      Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS &&
      new X509Certificate(bundled).fingerprint256 === ca.fingerprint256
    );
  } catch {
    return false;
  }
}

/**
 * Signs a new key and certificate for one identity with the CA in dir and
 * swaps them in at once (the ..data rename). Returns what was issued; the
 * previous dated folder is removed after the swap.
 */
export function issueCertificate(dir: string, identity: string, options: SpiffeOptions = {}): IssuedCertificate {
  validIdentity(identity);
  if (!existsSync(join(dir, "ca.crt")) || !existsSync(join(dir, "ca.key"))) throw new Error(`no mesh CA in ${dir}: run ensureMeshCerts first`);
  const folder = identityDir(dir, identity);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const stamp = `..${new Date().toISOString().replace(/[-:.]/g, "").replace("T", "_")}.${randomBytes(3).toString("hex")}`;
  const dated = join(folder, stamp);
  mkdirSync(dated, { mode: 0o700 });
  const uri = spiffeId(identity, options);
  const key = join(dated, TLS_FILES.key);
  const csr = openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj", `/O=shop/CN=${identity}`]);
  chmodSync(key, 0o600);
  const extensions = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth,clientAuth",
    `subjectAltName=URI:${uri}`,
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid",
  ].join("\n");
  const extFile = join(dated, "extensions.cnf");
  writeFileSync(extFile, `${extensions}\n`);
  const pem = openssl(
    ["x509", "-req", "-CA", join(dir, "ca.crt"), "-CAkey", join(dir, "ca.key"), "-set_serial", `0x${randomSerial()}`, "-days", String(LEAF_DAYS), "-extfile", extFile],
    csr,
  );
  rmSync(extFile);
  writeFileSync(join(dated, TLS_FILES.cert), pem);
  writeFileSync(join(dated, TLS_FILES.ca), readFileSync(join(dir, "ca.crt")));

  // The swap: ..data_tmp -> the new folder, renamed over ..data (atomic), as the kubelet does.
  const data = join(folder, "..data");
  const previous = isSymlink(data) ? readlinkSync(data) : undefined;
  const tmp = join(folder, "..data_tmp");
  rmSync(tmp, { force: true });
  symlinkSync(stamp, tmp);
  renameSync(tmp, data);
  for (const file of Object.values(TLS_FILES)) {
    const link = join(folder, file);
    if (!isSymlink(link)) {
      rmSync(link, { force: true });
      symlinkSync(join("..data", file), link);
    }
  }
  // Old dated folders (and anything left by an interrupted run) go.
  for (const entry of readdirSync(folder)) {
    if (entry !== stamp && (entry === previous || /^\.\.\d{8}_/.test(entry))) rmSync(join(folder, entry), { recursive: true, force: true });
  }
  const cert = new X509Certificate(pem);
  return { identity, uri, serial: cert.serialNumber, validTo: cert.validTo };
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * The CA and a certificate for every identity under dir: made when missing or
 * not valid, kept otherwise. A CA made anew re-issues every leaf.
 */
export function ensureMeshCerts(dir: string, identities: readonly string[], options: SpiffeOptions = {}): EnsureResult {
  const root = resolve(dir);
  let caCreated = false;
  if (!caValid(root)) {
    createCa(root, options);
    caCreated = true;
  }
  const issued: string[] = [];
  const kept: string[] = [];
  for (const identity of identities) {
    validIdentity(identity);
    if (!caCreated && leafValid(root, identity, options)) kept.push(identity);
    else {
      issueCertificate(root, identity, options);
      issued.push(identity);
    }
  }
  return { caCreated, issued, kept };
}

/** Re-issues one identity's certificate (a new key, a new serial) under the existing CA: the rotation drill. */
export function reissueCertificate(dir: string, identity: string, options: SpiffeOptions = {}): IssuedCertificate {
  return issueCertificate(resolve(dir), identity, options);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dir = resolve(at("--dir") ?? ".mesh/certs");
  const reissue = at("--reissue");
  if (reissue) {
    const out = reissueCertificate(dir, reissue);
    process.stdout.write(`${out.uri}: serial ${out.serial}, valid to ${out.validTo}\n`);
  } else {
    const { loadTopology } = await import("@shop/platform");
    const result = ensureMeshCerts(dir, meshIdentities(Object.keys(loadTopology().services)));
    process.stdout.write(`${dir}: CA ${result.caCreated ? "created" : "kept"}; issued ${result.issued.join(", ") || "none"}; kept ${result.kept.join(", ") || "none"}\n`);
  }
}
