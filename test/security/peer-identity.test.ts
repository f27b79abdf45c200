// SERVICE-only methods behind the sidecar (PEER_IDENTITY=xfcc) bind the
// caller's service token to the certificate the sidecar verified
// (x-forwarded-client-cert): both must name the same service. Without the
// switch (make run, no sidecar) the header means nothing. Against a real
// server process; the header is what the sidecar's inbound listener writes
// (the mTLS drill in test/mesh-drills checks the sidecar writes it).
import { expect } from "chai";
import { EchoService } from "../../gen/mesh/testing/v1/echo_pb.js";
import { Code, ConnectError, grpcClient } from "../support/connect-clients.ts";
import { testAuthority } from "../support/keys.ts";
import { startServerProcess } from "../support/process.ts";
import type { ServerProcess } from "../support/process.ts";

const spiffe = (service: string, domain = "shop.local") => `spiffe://${domain}/ns/shop/sa/${service}`;
const xfcc = (service: string, domain?: string) => `By=${spiffe("payments")};Hash=0f0f;URI=${spiffe(service, domain)}`;

describe("the caller's identity from the sidecar", function () {
  let behind: ServerProcess;
  let bare: ServerProcess;
  const tokens = testAuthority();

  before(async function () {
    [behind, bare] = await Promise.all([
      startServerProcess("test/fixtures/echo-server.ts", { PEER_IDENTITY: "xfcc" }),
      startServerProcess("test/fixtures/echo-server.ts", {}),
    ]);
  });
  after(async () => Promise.all([behind?.stop(), bare?.stop()]));

  async function internal(server: ServerProcess, headers: Record<string, string>): Promise<string> {
    try {
      return `OK ${(await grpcClient(EchoService, server.url).internal({}, { headers })).caller}`;
    } catch (err) {
      const e = ConnectError.from(err);
      return `${Code[e.code]}: ${e.rawMessage}`;
    }
  }
  const bearer = async (service: string) => `Bearer ${await tokens.issueServiceToken(service)}`;

  it("accepts a service token that names the service of the verified certificate", async function () {
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("orders"), authorization: await bearer("orders") })).to.equal("OK orders");
  });

  it("still needs the token beside the certificate: a forged header alone is UNAUTHENTICATED", async function () {
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("orders") })).to.match(/^Unauthenticated: /);
  });

  it("refuses a service token that names another service than the certificate: PERMISSION_DENIED", async function () {
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("notifications"), authorization: await bearer("payments") })).to.equal(
      "PermissionDenied: the token is payments's but the caller's certificate is notifications's",
    );
  });

  it("refuses a valid service token with no verified certificate: PERMISSION_DENIED", async function () {
    expect(await internal(behind, { authorization: await bearer("orders") })).to.match(/^PermissionDenied: .*no verified caller certificate/);
  });

  it("refuses a header it cannot read as exactly one identity of this trust domain", async function () {
    for (const value of [`${xfcc("orders")},${xfcc("payments")}`, xfcc("orders", "evil.example"), "URI=spiffe://shop.local/ns/shop/sa/orders/extra", "garbage"]) {
      expect(await internal(behind, { "x-forwarded-client-cert": value, authorization: await bearer("orders") }), value).to.match(/^PermissionDenied: /);
    }
  });

  it("still needs the operator's token when the edge or its backend relays a call from outside", async function () {
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("edge-backend") })).to.match(/^Unauthenticated: /);
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("edge-backend"), authorization: await bearer("operator") })).to.equal("OK operator");
    const user = (await tokens.issueUserToken("u-1")).token;
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("edge"), authorization: `Bearer ${user}` })).to.match(/^PermissionDenied: /);
  });

  it("refuses a forged token even beside a good certificate: UNAUTHENTICATED", async function () {
    expect(await internal(behind, { "x-forwarded-client-cert": xfcc("orders"), authorization: "Bearer not.a.token" })).to.match(/^Unauthenticated: /);
  });

  it("means nothing without PEER_IDENTITY=xfcc: the header alone is UNAUTHENTICATED", async function () {
    expect(await internal(bare, { "x-forwarded-client-cert": xfcc("orders") })).to.match(/^Unauthenticated: /);
    expect(await internal(bare, { authorization: await bearer("orders") })).to.equal("OK orders");
  });
});
