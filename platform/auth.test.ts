// Authentication and the contract's audiences: WhoAmI needs a user (or a
// service acting for one), Internal needs a service; a bad token is refused
// whatever the method. Each case through three independent clients.
import { expect } from "chai";
import { EchoService } from "../gen/mesh/testing/v1/echo_pb.js";
import { Code, ConnectError, grpcClient } from "../test/support/connect-clients.ts";
import { createGrpcJsClient, grpc } from "../test/support/grpc-js-client.ts";
import type { GrpcJsCall } from "../test/support/grpc-js-client.ts";
import { grpcurl } from "../test/support/grpcurl.ts";
import { startServerProcess } from "../test/support/process.ts";
import type { ServerProcess } from "../test/support/process.ts";
import { strangerAuthority, testAuthority } from "../test/support/keys.ts";

type Outcome = { ok: true; body: Record<string, unknown> } | { ok: false; code: string; message: string };
type MethodName = "whoAmI" | "internal";
type Caller = (method: MethodName, authorization: string | undefined) => Promise<Outcome>;

const grpcurlName: Record<MethodName, string> = { whoAmI: "WhoAmI", internal: "Internal" };

describe("auth", function () {
  let server: ServerProcess;
  let grpcJs: GrpcJsCall;
  const tokens: Record<"user" | "service" | "forged" | "expired", string> = { user: "", service: "", forged: "", expired: "" };

  before(async function () {
    server = await startServerProcess("test/fixtures/echo-server.ts", {});
    grpcJs = createGrpcJsClient(server.address);
    const authority = testAuthority();
    tokens.user = (await authority.issueUserToken("user-42")).token;
    tokens.service = await authority.issueServiceToken("orders");
    tokens.forged = (await strangerAuthority().issueUserToken("user-42")).token;
    tokens.expired = (await testAuthority({ userTokenTtlSeconds: -60 }).issueUserToken("user-42")).token;
  });

  after(async function () {
    grpcJs?.close();
    await server?.stop();
  });

  const clients: Record<string, Caller> = {
    "a generated Connect client": async (method, authorization) => {
      const client = grpcClient(EchoService, server.url);
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      try {
        const { $typeName, ...body } = method === "whoAmI" ? await client.whoAmI({}, { headers }) : await client.internal({}, { headers });
        return { ok: true, body };
      } catch (err) {
        const e = ConnectError.from(err);
        return { ok: false, code: Code[e.code], message: e.rawMessage };
      }
    },
    "the grpc-js client": async (method, authorization) => {
      const metadata: Record<string, string> = authorization === undefined ? {} : { authorization };
      try {
        const { $typeName, ...body } =
          method === "whoAmI"
            ? await grpcJs.unary(EchoService.method.whoAmI, {}, { metadata })
            : await grpcJs.unary(EchoService.method.internal, {}, { metadata });
        return { ok: true, body };
      } catch (err) {
        const e = err as grpc.ServiceError;
        return { ok: false, code: Code[e.code], message: e.details };
      }
    },
    grpcurl: async (method, authorization) => {
      // -H sends the header with reflection requests too, where a bad token is
      // refused as well; -rpc-header puts it on the method call only, so the
      // refusal seen here is the method's own.
      const header = authorization === undefined ? [] : [tokenIsGood(authorization) ? "-H" : "-rpc-header", `authorization: ${authorization}`];
      const res = await grpcurl(["-plaintext", ...header, "-d", "{}", server.address, `mesh.testing.v1.EchoService/${grpcurlName[method]}`]);
      if (res.code === 0) return { ok: true, body: JSON.parse(res.stdout) as Record<string, unknown> };
      const parsed = /Code: (\w+)\n\s*Message: (.*)/.exec(res.stderr);
      return parsed ? { ok: false, code: parsed[1], message: parsed[2] } : { ok: false, code: "?", message: res.stderr };
    },
  };

  const tokenIsGood = (authorization: string) => authorization === `Bearer ${tokens.user}` || authorization === `Bearer ${tokens.service}`;

  const cases: Array<{ title: string; method: MethodName; authorization: () => string | undefined; expected: Outcome }> = [
    {
      title: "WhoAmI without a token answers UNAUTHENTICATED",
      method: "whoAmI",
      authorization: () => undefined,
      expected: { ok: false, code: "Unauthenticated", message: "this method requires a bearer token" },
    },
    {
      title: "WhoAmI with a user token answers kind user and the subject",
      method: "whoAmI",
      authorization: () => `Bearer ${tokens.user}`,
      expected: { ok: true, body: { kind: "user", subject: "user-42" } },
    },
    {
      title: "WhoAmI with a service token answers kind service and the service's name",
      method: "whoAmI",
      authorization: () => `Bearer ${tokens.service}`,
      expected: { ok: true, body: { kind: "service", subject: "orders" } },
    },
    {
      title: "WhoAmI with a token signed by another key answers UNAUTHENTICATED",
      method: "whoAmI",
      authorization: () => `Bearer ${tokens.forged}`,
      expected: { ok: false, code: "Unauthenticated", message: "invalid token" },
    },
    {
      title: "WhoAmI with an expired token answers UNAUTHENTICATED",
      method: "whoAmI",
      authorization: () => `Bearer ${tokens.expired}`,
      expected: { ok: false, code: "Unauthenticated", message: "token expired" },
    },
    {
      title: 'WhoAmI with "Bearer garbage" answers UNAUTHENTICATED',
      method: "whoAmI",
      authorization: () => "Bearer garbage",
      expected: { ok: false, code: "Unauthenticated", message: "invalid token" },
    },
    {
      title: 'WhoAmI with "Basic x" answers UNAUTHENTICATED',
      method: "whoAmI",
      authorization: () => "Basic x",
      expected: { ok: false, code: "Unauthenticated", message: "authorization header must be 'Bearer <token>'" },
    },
    {
      title: "Internal with a user token answers PERMISSION_DENIED",
      method: "internal",
      authorization: () => `Bearer ${tokens.user}`,
      expected: { ok: false, code: "PermissionDenied", message: "this method may only be called by another service" },
    },
    {
      title: "Internal with a service token answers OK with the caller's name",
      method: "internal",
      authorization: () => `Bearer ${tokens.service}`,
      expected: { ok: true, body: { caller: "orders" } },
    },
  ];

  for (const [clientName, call] of Object.entries(clients)) {
    describe(`through ${clientName}`, function () {
      for (const c of cases) {
        it(c.title, async function () {
          const outcome = await call(c.method, c.authorization());
          expect(outcome).to.deep.equal(c.expected);
        });
      }
    });
  }

  it("a public method (Echo) still refuses a forged token rather than ignoring it", async function () {
    const err = await grpcClient(EchoService, server.url)
      .echo({ message: "public" }, { headers: { authorization: `Bearer ${tokens.forged}` } })
      .then(
        () => expect.fail("Echo accepted a forged token"),
        (e: unknown) => ConnectError.from(e),
      );
    expect(err.code).to.equal(Code.Unauthenticated);
  });

  it("grpcurl -H with a forged token is refused UNAUTHENTICATED: -H reaches reflection too, which refuses it first", async function () {
    const res = await grpcurl(["-plaintext", "-H", `authorization: Bearer ${tokens.forged}`, "-d", "{}", server.address, "mesh.testing.v1.EchoService/WhoAmI"]);
    expect(res.code).to.not.equal(0);
    expect(res.stderr).to.include("failed to query for service descriptor").and.include("Unauthenticated").and.include("invalid token");
  });

  describe("afterwards", function () {
    it("still serves", async function () {
      const res = await grpcClient(EchoService, server.url).echo({ message: "after auth" });
      expect(res.message).to.equal("after auth");
    });
  });
});
