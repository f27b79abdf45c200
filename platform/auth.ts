// Signed bearer tokens (EdDSA over Ed25519 through jose) and the audience
// check the contract declares per method. User tokens are signed by the users
// service alone, each service's tokens by that service alone, operator tokens
// by the operator key (token-keys.ts says which kid signs what); every process
// verifies with the public key set. A token is accepted only when its kid is in
// the set, its algorithm is EdDSA, its issuer is ours and the kid's role may
// sign its kind and subject: `alg: none`, HS256 keyed with a public key, a
// retired or unknown kid, another issuer, and a service's key signing for a
// user or for another service are all UNAUTHENTICATED.
import { SignJWT, jwtVerify, decodeProtectedHeader, errors as joseErrors } from "jose";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AudienceName } from "./contract.ts";
import { loadTopology } from "./ops/topology.ts";
import { developmentKeySource, KEYS_HOWTO, KeyConfigError, keySourceFromEnv, roleFor } from "./token-keys.ts";
import type { KeySource } from "./token-keys.ts";

export interface Principal {
  readonly kind: "user" | "service";
  /** User id, or the calling service's name ("operator" for operators). */
  readonly subject: string;
}

export interface TokenAuthority {
  issueUserToken(userId: string): Promise<{ token: string; expiresAt: Date }>;
  issueServiceToken(service: string): Promise<string>;
  /** Verifies a token; throws UNAUTHENTICATED when it is forged, expired or malformed. */
  verify(token: string): Promise<Principal>;
  /** True when the keys are generated development keys (loopback only). */
  readonly development: boolean;
  /** Where the keys come from, for log lines. */
  readonly keyOrigin: string;
}

export interface TokenAuthorityOptions {
  /** The keys. Default: the environment's (SHOP_JWKS_FILE, ...), else development keys when allowed. */
  keys?: KeySource;
  /** Allow development keys when the environment configures none. Default SHOP_DEV_KEYS=1. */
  allowDevelopmentKeys?: boolean;
  /** The services development keys are made for. Default the topology's. */
  developmentServices?: readonly string[];
  /** Lifetime of user tokens in seconds. Default 3600. */
  userTokenTtlSeconds?: number;
  /** The issuer claim written and required. Default SHOP_TOKEN_ISSUER, then "shop". */
  issuer?: string;
}

const VERIFIED_CACHE_SIZE = 10_000;

/** The keys a process runs with: configured, or development keys when allowed; otherwise it says what to set. */
export function resolveKeySource(options: TokenAuthorityOptions = {}, env: NodeJS.ProcessEnv = process.env): KeySource {
  if (options.keys) return options.keys;
  const configured = keySourceFromEnv(env);
  if (configured) return configured;
  const allowed = options.allowDevelopmentKeys ?? /^(1|true|yes)$/i.test(env.SHOP_DEV_KEYS ?? "");
  if (!allowed) throw new KeyConfigError(`no token keys are configured: ${KEYS_HOWTO}`);
  return developmentKeySource(options.developmentServices ?? topologyServices(), env);
}

function topologyServices(): string[] {
  try {
    return [...Object.keys(loadTopology().services), "edge-backend"];
  } catch {
    return [];
  }
}

export function createTokenAuthority(options: TokenAuthorityOptions = {}): TokenAuthority {
  const source = resolveKeySource(options);
  const issuer = options.issuer ?? process.env.SHOP_TOKEN_ISSUER ?? "shop";
  const userTtl = options.userTokenTtlSeconds ?? 3600;
  const serviceTokens = new Map<string, { token: string; renewAt: number; kid: string }>();
  const verified = new Map<string, { principal: Principal; expiresAt: number }>();
  let generation = source.current().generation;

  /** The current keys; a change of keys drops what was verified (a retired key's tokens stop at once). */
  function keys(current = source.current()) {
    if (current.generation !== generation) {
      generation = current.generation;
      verified.clear();
    }
    return current;
  }

  function signer(kind: Principal["kind"], subject: string) {
    const role = roleFor(kind, subject);
    const key = keys().signing.get(role);
    if (!key) throw new ConnectError(`this process holds no signing key for ${role} (${keys().origin})`, Code.Internal);
    return key;
  }

  async function sign(kind: Principal["kind"], subject: string, ttlSeconds: number): Promise<string> {
    const { kid, key } = signer(kind, subject);
    return new SignJWT({ kind })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
      .setSubject(subject)
      .setIssuer(issuer)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(key);
  }

  return {
    get development() {
      return source.current().development;
    },
    get keyOrigin() {
      return source.current().origin;
    },
    async issueUserToken(userId) {
      const token = await sign("user", userId, userTtl);
      return { token, expiresAt: new Date(Date.now() + userTtl * 1000) };
    },
    async issueServiceToken(service) {
      const cached = serviceTokens.get(service);
      // A rotated signing key takes over at once for new tokens.
      if (cached && cached.renewAt > Date.now() && cached.kid === signer("service", service).kid) return cached.token;
      // Service tokens live 10 minutes and are renewed after 5.
      const token = await sign("service", service, 600);
      serviceTokens.set(service, { token, renewAt: Date.now() + 300_000, kid: signer("service", service).kid });
      return token;
    },
    async verify(token) {
      // A token seen before is not verified again until it expires (or the keys change).
      const set = keys();
      const cached = verified.get(token);
      if (cached && cached.expiresAt > Date.now()) return cached.principal;
      const fresh = await verifyUncached(token, set);
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
      verified.set(token, fresh);
      return fresh.principal;
    },
  };

  async function verifyUncached(token: string, set: ReturnType<KeySource["current"]>): Promise<{ principal: Principal; expiresAt: number }> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new ConnectError("invalid token", Code.Unauthenticated);
    }
    // A kid we do not know yet may be a key just published: look at the files once more.
    const entry = kid === undefined ? undefined : (set.verifying.get(kid) ?? (source.refresh ? keys(source.refresh()) : set).verifying.get(kid));
    if (!entry) throw new ConnectError("token signed with an unknown or retired key", Code.Unauthenticated);
    try {
      const { payload } = await jwtVerify(token, entry.key, { issuer, algorithms: ["EdDSA"] });
      const kind = payload.kind;
      if ((kind !== "user" && kind !== "service") || typeof payload.sub !== "string" || typeof payload.exp !== "number") {
        throw new ConnectError("token has no valid subject", Code.Unauthenticated);
      }
      if (roleFor(kind, payload.sub) !== entry.role) {
        throw new ConnectError(`token for ${kind} ${payload.sub} signed with a ${entry.role} key`, Code.Unauthenticated);
      }
      return { principal: { kind, subject: payload.sub }, expiresAt: payload.exp * 1000 };
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new ConnectError("token expired", Code.Unauthenticated);
      throw new ConnectError("invalid token", Code.Unauthenticated);
    }
  }
}

/** The bearer token in an authorization header, or undefined. */
export function bearerToken(header: string | null): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : undefined;
}

/**
 * Resolves the caller and checks it against the method's audience.
 * A public method still verifies a token when one is sent, so handlers can
 * personalise; a bad token on a public method is still UNAUTHENTICATED.
 */
export async function authorize(
  authority: TokenAuthority,
  audience: AudienceName,
  authorization: string | null,
): Promise<Principal | undefined> {
  const token = bearerToken(authorization);
  if (token === undefined) {
    if (authorization) throw new ConnectError("authorization header must be 'Bearer <token>'", Code.Unauthenticated);
    if (audience === "public") return undefined;
    throw new ConnectError("this method requires a bearer token", Code.Unauthenticated);
  }
  const principal = await authority.verify(token);
  if (audience === "service" && principal.kind !== "service") {
    throw new ConnectError("this method may only be called by another service", Code.PermissionDenied);
  }
  return principal;
}

/** Identities of the mesh that speak for someone outside it: their calls need the outsider's (operator's) token. */
const GATEWAY_IDENTITIES = new Set(["edge", "edge-backend"]);

/**
 * A SERVICE-audience call behind the mesh's sidecar (PEER_IDENTITY=xfcc): the
 * caller must be who both its mesh certificate (verified by the sidecar,
 * x-forwarded-client-cert: peer-identity.ts) and its service token say.
 * - No verified identity: PERMISSION_DENIED (nothing reaches the app but
 *   through its sidecar, which always says who called).
 * - A service's certificate: its service token must name that same service,
 *   or PERMISSION_DENIED. A stolen token is worthless from another workload,
 *   and a forged header is worthless without that service's signing key.
 * - The edge or its backend: they relay someone outside, whose own token
 *   (an operator's) decides, as without the mesh.
 */
export async function authorizeServicePeer(
  authority: TokenAuthority,
  authorization: string | null,
  peer: string | undefined,
): Promise<Principal> {
  if (peer === undefined) {
    throw new ConnectError("this method may only be called by another service of the mesh: no verified caller certificate", Code.PermissionDenied);
  }
  const principal = (await authorize(authority, "service", authorization))!;
  if (!GATEWAY_IDENTITIES.has(peer) && principal.subject !== peer) {
    throw new ConnectError(`the token is ${principal.subject}'s but the caller's certificate is ${peer}'s`, Code.PermissionDenied);
  }
  return principal;
}
