// Signed bearer tokens (HS256 through jose) and the audience check the
// contract declares per method. One key signs user tokens (issued by the users
// service at login) and service tokens (minted by each service for its own
// outgoing calls); the "kind" claim tells them apart.
import { SignJWT, jwtVerify, errors as joseErrors } from "jose";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AudienceName } from "./contract.ts";

export interface Principal {
  readonly kind: "user" | "service";
  /** User id, or the calling service's name. */
  readonly subject: string;
}

export interface TokenAuthority {
  issueUserToken(userId: string): Promise<{ token: string; expiresAt: Date }>;
  issueServiceToken(service: string): Promise<string>;
  /** Verifies a token; throws UNAUTHENTICATED when it is forged, expired or malformed. */
  verify(token: string): Promise<Principal>;
}

export interface TokenAuthorityOptions {
  /** Secret signing key. Defaults to SHOP_TOKEN_KEY, then a development key (never use it in production). */
  key?: string;
  /** Lifetime of user tokens in seconds. Default 3600. */
  userTokenTtlSeconds?: number;
}

export const DEVELOPMENT_TOKEN_KEY = "development-only-token-key-change-me";
const ISSUER = "shop";
const VERIFIED_CACHE_SIZE = 10_000;

export function createTokenAuthority(options: TokenAuthorityOptions = {}): TokenAuthority {
  const secret = new TextEncoder().encode(options.key ?? process.env.SHOP_TOKEN_KEY ?? DEVELOPMENT_TOKEN_KEY);
  const userTtl = options.userTokenTtlSeconds ?? 3600;
  const serviceTokens = new Map<string, { token: string; renewAt: number }>();
  const verified = new Map<string, { principal: Principal; expiresAt: number }>();

  async function sign(kind: Principal["kind"], subject: string, ttlSeconds: number): Promise<string> {
    return new SignJWT({ kind })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(subject)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(secret);
  }

  return {
    async issueUserToken(userId) {
      const token = await sign("user", userId, userTtl);
      return { token, expiresAt: new Date(Date.now() + userTtl * 1000) };
    },
    async issueServiceToken(service) {
      const cached = serviceTokens.get(service);
      if (cached && cached.renewAt > Date.now()) return cached.token;
      // Service tokens live 10 minutes and are renewed after 5.
      const token = await sign("service", service, 600);
      serviceTokens.set(service, { token, renewAt: Date.now() + 300_000 });
      return token;
    },
    async verify(token) {
      // A token seen before is not verified again until it expires: HMAC
      // verification through WebCrypto is an async job per call, and one
      // user's calls (and the calls made on their behalf) repeat the token.
      const cached = verified.get(token);
      if (cached && cached.expiresAt > Date.now()) return cached.principal;
      const fresh = await verifyUncached(token);
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
      verified.set(token, fresh);
      return fresh.principal;
    },
  };

  async function verifyUncached(token: string): Promise<{ principal: Principal; expiresAt: number }> {
    try {
      const { payload } = await jwtVerify(token, secret, { issuer: ISSUER, algorithms: ["HS256"] });
      const kind = payload.kind;
      if ((kind !== "user" && kind !== "service") || typeof payload.sub !== "string" || typeof payload.exp !== "number") {
        throw new ConnectError("token has no valid subject", Code.Unauthenticated);
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
