import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { createGrpcJsClient, grpc } from "../../test/support/grpc-js-client.ts";
import { grpcurl } from "../../test/support/grpcurl.ts";
import { startTestShop } from "../../test/support/shop.ts";
import type { TestShop } from "../../test/support/shop.ts";
import { users } from "./index.ts";
import { hashPassword, primeDecoy, scryptWork, verifyPassword } from "./password.ts";
import { codeOf } from "../../test/support/errors.ts";

describe("password hashing", () => {
  it("stores scrypt with a fresh salt each time and verifies only the right password", async () => {
    const first = await hashPassword("s3cret-password");
    const second = await hashPassword("s3cret-password");
    expect(first).to.match(/^scrypt\$16384\$8\$1\$/);
    expect(first).not.to.equal(second);
    expect(first).not.to.contain("s3cret-password");
    expect(await verifyPassword("s3cret-password", first)).to.equal(true);
    expect(await verifyPassword("s3cret-passwore", first)).to.equal(false);
  });
});

describe("users service", () => {
  let t: TestShop;
  before(async () => {
    t = await startTestShop([users]);
  });
  after(() => t.stop());

  const client = () => t.client(UserService);

  it("signs up, logs in and reads the caller's own profile with the token", async () => {
    const { user } = await client().signUp({ email: "Grace@Example.com", password: "hopper-1906", displayName: "Grace" });
    expect(user?.email).to.equal("grace@example.com");
    const login = await client().login({ email: "grace@example.com", password: "hopper-1906" });
    expect(login.token).to.match(/^ey/);
    expect(login.user?.id).to.equal(user?.id);
    const profile = await client().getProfile({}, t.as(login.token));
    expect(profile.user?.displayName).to.equal("Grace");
  });

  it("answers ALREADY_EXISTS for an email taken in any letter case", async () => {
    await client().signUp({ email: "dup@example.com", password: "password-1", displayName: "One" });
    expect(await codeOf(client().signUp({ email: "DUP@example.com", password: "password-2", displayName: "Two" }))).to.equal(Code.AlreadyExists);
  });

  it("never writes the password to a log line", async () => {
    await client().signUp({ email: "hash@example.com", password: "plain-text-pw", displayName: "H" });
    await client().login({ email: "hash@example.com", password: "plain-text-pw" });
    expect(t.logs.filter((l) => l.method === "Login")).to.have.length.greaterThan(0);
    expect(JSON.stringify(t.logs)).not.to.contain("plain-text-pw");
  });

  it("answers UNAUTHENTICATED with one message for a wrong password and an unknown email", async () => {
    await client().signUp({ email: "login@example.com", password: "right-password", displayName: "L" });
    const wrong = await client().login({ email: "login@example.com", password: "wrong-password" }).catch((e: unknown) => ConnectError.from(e));
    const unknown = await client().login({ email: "nobody@example.com", password: "wrong-password" }).catch((e: unknown) => ConnectError.from(e));
    expect(wrong).to.be.instanceOf(ConnectError);
    expect(unknown).to.be.instanceOf(ConnectError);
    expect((wrong as ConnectError).code).to.equal(Code.Unauthenticated);
    expect((wrong as ConnectError).rawMessage).to.equal((unknown as ConnectError).rawMessage);
  });

  it("costs one scrypt at the stored cost for an unknown email, a wrong password and a right one alike", async () => {
    await client().signUp({ email: "cost@example.com", password: "right-password", displayName: "C" });
    const decoy = await primeDecoy();
    expect(decoy.split("$").slice(0, 4)).to.deep.equal(["scrypt", "16384", "8", "1"]);
    const cost = async (email: string, password: string) => {
      const before = scryptWork().derivations;
      await client().login({ email, password }).catch(() => undefined);
      return scryptWork().derivations - before;
    };
    expect(await cost("nobody-at-all@example.com", "whatever-pw")).to.equal(1);
    expect(await cost("cost@example.com", "wrong-password")).to.equal(1);
    expect(await cost("cost@example.com", "right-password")).to.equal(1);
  });

  it("rejects sign-up input that breaks the contract's rules, naming each field", async () => {
    const err = await client()
      .signUp({ email: "not-an-email", password: "short", displayName: "" })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).to.equal(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).to.contain("email: must be a valid email address");
    expect((err as ConnectError).rawMessage).to.contain("password: must be at least 8 characters");
    expect((err as ConnectError).rawMessage).to.contain("display_name: is required");
  });

  it("requires a token for the profile and forbids reading another user's", async () => {
    const a = await client().signUp({ email: "a@example.com", password: "password-a", displayName: "A" });
    await client().signUp({ email: "b@example.com", password: "password-b", displayName: "B" });
    const b = await client().login({ email: "b@example.com", password: "password-b" });
    expect(await codeOf(client().getProfile({}))).to.equal(Code.Unauthenticated);
    expect(await codeOf(client().getProfile({ userId: a.user!.id }, t.as(b.token)))).to.equal(Code.PermissionDenied);
    const serviceToken = await t.tokens.issueServiceToken("storefront");
    const read = await client().getProfile({ userId: a.user!.id }, t.as(serviceToken));
    expect(read.user?.email).to.equal("a@example.com");
  });

  it("updates the caller's display name", async () => {
    await client().signUp({ email: "upd@example.com", password: "password-u", displayName: "Before" });
    const { token } = await client().login({ email: "upd@example.com", password: "password-u" });
    const updated = await client().updateProfile({ displayName: "After" }, t.as(token));
    expect(updated.user?.displayName).to.equal("After");
    expect((await client().getProfile({}, t.as(token))).user?.displayName).to.equal("After");
  });

  it("works the same through grpcurl: sign-up, login and an authenticated profile call", async () => {
    const signUp = await grpcurl(["-plaintext", "-d", '{"email":"curl@example.com","password":"grpcurl-pw","display_name":"Curl"}', t.address, "shop.users.v1.UserService/SignUp"]);
    expect(signUp.code, signUp.stderr).to.equal(0);
    const login = await grpcurl(["-plaintext", "-d", '{"email":"curl@example.com","password":"grpcurl-pw"}', t.address, "shop.users.v1.UserService/Login"]);
    expect(login.code, login.stderr).to.equal(0);
    const token = (JSON.parse(login.stdout) as { token: string }).token;
    const profile = await grpcurl(["-plaintext", "-H", `authorization: Bearer ${token}`, t.address, "shop.users.v1.UserService/GetProfile"]);
    expect(profile.code, profile.stderr).to.equal(0);
    expect(JSON.parse(profile.stdout).user.email).to.equal("curl@example.com");
    const denied = await grpcurl(["-plaintext", t.address, "shop.users.v1.UserService/GetProfile"]);
    expect(denied.stderr).to.contain("Unauthenticated");
  });

  it("works the same through a @grpc/grpc-js client", async () => {
    const c = createGrpcJsClient(t.address);
    try {
      const signUp = UserService.method.signUp;
      const res = await c.unary(signUp, { email: "grpcjs@example.com", password: "grpc-js-pw", displayName: "G" });
      expect(res.user?.email).to.equal("grpcjs@example.com");
      const err = await c.unary(signUp, { email: "grpcjs@example.com", password: "grpc-js-pw", displayName: "G" }).catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).to.equal(grpc.status.ALREADY_EXISTS);
    } finally {
      c.close();
    }
  });
});
