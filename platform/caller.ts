// Who is calling, for handlers: the principal the pipeline authenticated.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Principal } from "./auth.ts";
import { currentScope } from "./call-scope.ts";

/** The caller, whoever it is; UNAUTHENTICATED when the call carried no token. */
export function requireCaller(): Principal {
  const principal = currentScope()?.principal;
  if (!principal) throw new ConnectError("this call needs a bearer token", Code.Unauthenticated);
  return principal;
}

/** The signed-in user's id; PERMISSION_DENIED when the caller is a service. */
export function requireUser(): string {
  const principal = requireCaller();
  if (principal.kind !== "user") throw new ConnectError("this call must be made by a signed-in user", Code.PermissionDenied);
  return principal.subject;
}
