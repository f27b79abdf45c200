// What a handler's outgoing calls inherit from the call being handled: the
// absolute deadline, the caller, and the caller's authorization header (so a
// user's identity travels with calls made on their behalf).
import { AsyncLocalStorage } from "node:async_hooks";
import type { Principal } from "./auth.ts";

export interface CallScope {
  /** Epoch milliseconds after which the call being handled has failed. */
  readonly deadlineAt: number | undefined;
  readonly principal: Principal | undefined;
  readonly authorization: string | undefined;
  /** The logical service handling the call ("users"). */
  readonly serviceName: string;
}

const storage = new AsyncLocalStorage<CallScope>();

export function currentScope(): CallScope | undefined {
  return storage.getStore();
}

export function runInScope<T>(scope: CallScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** Milliseconds left of the current call's budget, or undefined when it has none. */
export function remainingBudgetMs(): number | undefined {
  const deadlineAt = storage.getStore()?.deadlineAt;
  return deadlineAt === undefined ? undefined : deadlineAt - Date.now();
}
