// users: sign-up with a unique, validated email; login returning a signed
// token; the profile.
import type { ServiceModule } from "@shop/platform";
import { serve } from "@shop/platform";
import { UserService } from "../../gen/shop/users/v1/users_pb.js";
import { migrations } from "./migrations.ts";
import { createUserStore } from "./store.ts";
import { createUserService } from "./user-service.ts";

export const users: ServiceModule = {
  name: "users",
  migrations,
  async start(ctx) {
    const store = createUserStore(ctx.db);
    return { services: [serve(UserService, createUserService({ store, tokens: ctx.tokens, events: ctx.events }))] };
  },
};
