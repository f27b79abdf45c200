// Every way to forge a token we know of, tried against a real server: each is
// UNAUTHENTICATED, and the genuine tokens beside them pass. The keys are the
// suite's (test/support/keys.ts); the forger holds what an attacker could:
// the public key set, other services' keys, keys of their own.
import { expect } from "chai";
import { createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { SignJWT } from "jose";
import { EchoService } from "../../gen/mesh/testing/v1/echo_pb.js";
import { generateKey } from "../../platform/token-keys.ts";
import { Code, ConnectError, grpcClient } from "../support/connect-clients.ts";
import { testAuthority, testKeys } from "../support/keys.ts";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";

type Jwk = { kid: string; x: string; d?: string };
const privateKeys = (JSON.parse(testKeys.signing) as { keys: Jwk[] }).keys;
const publicKeys = (JSON.parse(testKeys.jwks) as { keys: Jwk[] }).keys;
const keyOf = (kidPrefix: string): { kid: string; key: KeyObject } => {
  const jwk = privateKeys.find((k) => k.kid.startsWith(kidPrefix))!;
  return { kid: jwk.kid, key: createPrivateKey({ key: jwk as never, format: "jwk" }) };
};
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

/** A token signed with one of the suite's private keys, claims as given. */
async function signed(kidPrefix: string, claims: { kind: string; sub: string; iss?: string }): Promise<string> {
  const { kid, key } = keyOf(kidPrefix);
  return new SignJWT({ kind: claims.kind })
    .setProtectedHeader({ alg: "EdDSA", kid })
    .setSubject(claims.sub)
    .setIssuer(claims.iss ?? "shop")
    .setIssuedAt()
    .setExpirationTime(now() + 600)
    .sign(key);
}

/** A user token signed with a fresh key of the attacker's, under kid user:<id>. */
function signedWithOwnKey(id: string): Promise<string> {
  const own = generateKey("user", id);
  return new SignJWT({ kind: "user" })
    .setProtectedHeader({ alg: "EdDSA", kid: own.private.kid! })
    .setSubject("user-1")
    .setIssuer("shop")
    .setExpirationTime(now() + 600)
    .sign(createPrivateKey({ key: own.private as never, format: "jwk" }));
}

describe("forged tokens", function () {
  let server: ServerProcess;
  const userKid = publicKeys.find((k) => k.kid.startsWith("user:"))!.kid;

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts");
  });
  after(async () => server?.stop());

  async function whoAmI(token: string): Promise<{ ok: true; subject: string } | { ok: false; code: Code; message: string }> {
    try {
      const res = await grpcClient(EchoService, server.url).whoAmI({}, { headers: { authorization: `Bearer ${token}` } });
      return { ok: true, subject: res.subject };
    } catch (err) {
      const e = ConnectError.from(err);
      return { ok: false, code: e.code, message: e.rawMessage };
    }
  }

  it("accepts the genuine user and service tokens (the control)", async function () {
    const authority = testAuthority();
    expect(await whoAmI((await authority.issueUserToken("user-1")).token)).to.deep.equal({ ok: true, subject: "user-1" });
    expect(await whoAmI(await authority.issueServiceToken("orders"))).to.deep.equal({ ok: true, subject: "orders" });
  });

  const forgeries: Record<string, () => Promise<string>> = {
    "alg none": async () => `${b64({ alg: "none", kid: userKid, typ: "JWT" })}.${b64({ kind: "user", sub: "user-1", iss: "shop", exp: now() + 600 })}.`,
    "HS256 keyed with the public key (algorithm confusion)": async () => {
      const jwk = publicKeys.find((k) => k.kid === userKid)!;
      const claims = { kind: "user", sub: "user-1" };
      // Both ways a confused verifier could take the "secret": the raw key bytes and the JWK's text.
      const tokens = await Promise.all(
        [Buffer.from(jwk.x, "base64url"), Buffer.from(JSON.stringify(jwk))].map((secret) =>
          new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: userKid }).setSubject("user-1").setIssuer("shop").setExpirationTime(now() + 600).sign(secret),
        ),
      );
      return tokens.join(" ");
    },
    "a key of the attacker's own, under the user key's kid": () => signedWithOwnKey("test"),
    "an unknown kid": () => signedWithOwnKey("not-published"),
    "the right key, another issuer": () => signed("user:", { kind: "user", sub: "user-1", iss: "elsewhere" }),
    "a service's key minting a user token": () => signed("service:orders:", { kind: "user", sub: "user-1" }),
    "a service's key minting another service's token": () => signed("service:orders:", { kind: "service", sub: "payments" }),
    "a service's key minting an operator token": () => signed("service:orders:", { kind: "service", sub: "operator" }),
    "the user key minting a service token": () => signed("user:", { kind: "service", sub: "payments" }),
    "an expired token": async () => (await testAuthority({ userTokenTtlSeconds: -60 }).issueUserToken("user-1")).token,
    "a genuine token with its payload changed": async () => {
      const [h, , s] = (await testAuthority().issueUserToken("user-1")).token.split(".");
      return `${h}.${b64({ kind: "user", sub: "user-2", iss: "shop", exp: now() + 600 })}.${s}`;
    },
  };

  for (const [name, forge] of Object.entries(forgeries)) {
    it(`refuses ${name}: UNAUTHENTICATED`, async function () {
      for (const token of (await forge()).split(" ")) {
        const outcome = await whoAmI(token);
        expect(outcome, token).to.deep.include({ ok: false, code: Code.Unauthenticated });
      }
    });
  }

  it("still serves after all of them", async function () {
    expect(await whoAmI((await testAuthority().issueUserToken("user-9")).token)).to.deep.equal({ ok: true, subject: "user-9" });
  });
});
