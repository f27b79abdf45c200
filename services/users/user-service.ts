// The UserService handlers. Validation (required fields, email format,
// lengths) already ran in the platform from the contract's rules.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { requireCaller, requireUser } from "@shop/platform";
import type { ServiceEvents, TokenAuthority } from "@shop/platform";
import { UserRegisteredSchema } from "../../gen/shop/users/v1/events_pb.js";
import type { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { checkCredentials, hashPassword, primeDecoy } from "./password.ts";
import type { UserRecord, UserStore } from "./store.ts";

export interface UserServiceDeps {
  store: UserStore;
  tokens: TokenAuthority;
  events: ServiceEvents;
}

const toUser = (u: UserRecord) => ({
  id: u.id,
  email: u.email,
  displayName: u.displayName,
  createdAt: timestampFromDate(new Date(u.createdAt)),
});

// One message for unknown email and wrong password: the answer must not tell
// an attacker which emails have accounts.
const badCredentials = () => new ConnectError("email or password is wrong", Code.Unauthenticated);

export function createUserService({ store, tokens, events }: UserServiceDeps): ServiceImpl<typeof UserService> {
  void primeDecoy();
  return {
    async signUp(req) {
      const record: UserRecord = {
        id: randomUUID(),
        email: req.email.trim().toLowerCase(),
        displayName: req.displayName.trim(),
        passwordHash: await hashPassword(req.password),
        createdAt: new Date().toISOString(),
      };
      const created = await events.transaction(async (tx, emit) => {
        if (!(await store.insert(tx, record))) return false;
        await emit(UserRegisteredSchema, { userId: record.id, email: record.email, displayName: record.displayName });
        return true;
      });
      if (!created) {
        throw new ConnectError(`an account with email ${record.email} already exists`, Code.AlreadyExists);
      }
      return { user: toUser(record) };
    },

    async login(req) {
      const user = await store.byEmail(req.email.trim().toLowerCase());
      // One scrypt whether or not the email has an account (password.ts).
      if (!(await checkCredentials(req.password, user?.passwordHash)) || !user) throw badCredentials();
      const { token, expiresAt } = await tokens.issueUserToken(user.id);
      return { token, expiresAt: timestampFromDate(expiresAt), user: toUser(user) };
    },

    async getProfile(req) {
      const caller = requireCaller();
      const id = req.userId || (caller.kind === "user" ? caller.subject : "");
      if (!id) throw new ConnectError("user_id is required when a service asks", Code.InvalidArgument);
      if (caller.kind === "user" && id !== caller.subject) {
        throw new ConnectError("a user may only read their own profile", Code.PermissionDenied);
      }
      const user = await store.byId(id);
      if (!user) throw new ConnectError(`user ${id} not found`, Code.NotFound);
      return { user: toUser(user) };
    },

    async updateProfile(req) {
      const id = requireUser();
      const user = await store.updateDisplayName(id, req.displayName.trim());
      if (!user) throw new ConnectError(`user ${id} not found`, Code.NotFound);
      return { user: toUser(user) };
    },
  };
}
