// What a handler's outgoing calls inherit from the call being handled: the
// absolute deadline, the caller, and the caller's authorization header (so a
// user's identity travels with calls made on their behalf).
//
// The scope rides in the OpenTelemetry context, next to the active span, so a
// call switches one async context, not two. installTracing() (done by
// createServer) installs the context manager that carries it.
import { context, createContextKey } from "@opentelemetry/api";
import type { Context } from "@opentelemetry/api";
import type { Principal } from "./auth.ts";

export interface CallScope {
  /** Epoch milliseconds after which the call being handled has failed. */
  readonly deadlineAt: number | undefined;
  readonly principal: Principal | undefined;
  readonly authorization: string | undefined;
  /** The logical service handling the call ("users"). */
  readonly serviceName: string;
}

const SCOPE = createContextKey("shop.call-scope");

export function currentScope(): CallScope | undefined {
  return context.active().getValue(SCOPE) as CallScope | undefined;
}

/** A context carrying the scope, for context.with. */
export function contextWithScope(parent: Context, scope: CallScope): Context {
  return parent.setValue(SCOPE, scope);
}

export function runInScope<T>(scope: CallScope, fn: () => T): T {
  return context.with(contextWithScope(context.active(), scope), fn);
}

/** Milliseconds left of the current call's budget, or undefined when it has none. */
export function remainingBudgetMs(): number | undefined {
  const deadlineAt = currentScope()?.deadlineAt;
  return deadlineAt === undefined ? undefined : deadlineAt - Date.now();
}
