// Errors a person can act on: every failed call is shown with its gRPC code,
// the server's message and what to do, in words; validation errors are put
// next to the field they name. Never a blank page, never a stack trace.
import { Code, ConnectError } from "@connectrpc/connect";
import { traceIdOf } from "./api.ts";
import { h } from "./dom.ts";
import type { Child } from "./dom.ts";

export interface FieldProblem {
  /** Path in proto field names, as the server names it: "email", "items[0].quantity". */
  field: string;
  description: string;
}

export interface Problem {
  /** The gRPC spelling: "INVALID_ARGUMENT". */
  code: string;
  /** What happened, for a person. */
  title: string;
  /** The server's own message. */
  message: string;
  fields: FieldProblem[];
  traceId?: string;
}

const titles: Record<string, string> = {
  CANCELLED: "The request was cancelled.",
  UNKNOWN: "Something unexpected went wrong.",
  INVALID_ARGUMENT: "Some of what you entered is not valid.",
  DEADLINE_EXCEEDED: "The shop took too long to answer. Try again in a moment.",
  NOT_FOUND: "We could not find that.",
  ALREADY_EXISTS: "That already exists.",
  PERMISSION_DENIED: "You are not allowed to do that.",
  RESOURCE_EXHAUSTED: "The shop is busy. Wait a moment and try again.",
  FAILED_PRECONDITION: "That cannot be done any more.",
  ABORTED: "That clashed with another change. Try again.",
  OUT_OF_RANGE: "A value is out of range.",
  UNIMPLEMENTED: "This is not available here.",
  INTERNAL: "Something went wrong on our side. It is not your fault.",
  UNAVAILABLE: "The shop cannot be reached right now. Try again in a moment.",
  DATA_LOSS: "Something went wrong on our side. It is not your fault.",
  UNAUTHENTICATED: "You are not logged in: log in again, or check your email and password.",
};

/** "InvalidArgument" → "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * The platform answers bad input with INVALID_ARGUMENT and a message
 * "invalid request: <field>: <what>; <field>: <what>".
 */
export function fieldProblems(message: string): FieldProblem[] {
  const prefix = "invalid request: ";
  if (!message.startsWith(prefix)) return [];
  return message
    .slice(prefix.length)
    .split("; ")
    .map((part) => {
      const at = part.indexOf(": ");
      return at < 0 ? { field: "", description: part } : { field: part.slice(0, at), description: part.slice(at + 2) };
    });
}

export function describeError(err: unknown): Problem {
  const traceId = traceIdOf(err);
  if (err instanceof ConnectError) {
    // fetch() failing outright (server down, network gone) reaches us as a
    // ConnectError without a code from the server.
    const unreachable = err.code === Code.Unknown && /fetch|network/i.test(err.rawMessage);
    const code = unreachable ? "UNAVAILABLE" : codeName(err.code);
    const fields = err.code === Code.InvalidArgument ? fieldProblems(err.rawMessage) : [];
    return { code, title: titles[code] ?? titles.UNKNOWN, message: err.rawMessage, fields, traceId };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "UNKNOWN", title: "Something went wrong in this page.", message, fields: [], traceId };
}

/** A box that says what failed, the code and message, and what to do next. */
export function errorBox(err: unknown, ...actions: Child[]): HTMLElement {
  return titledErrorBox(undefined, err, ...actions);
}

/** The same box, with a title that fits where it is shown better than the code's usual one. */
export function titledErrorBox(title: string | undefined, err: unknown, ...actions: Child[]): HTMLElement {
  const p = describeError(err);
  const loginHint = p.code === "UNAUTHENTICATED" && !/^#\/(console|login)/.test(location.hash) ? h("a", { href: "#/login" }, "Log in") : null;
  return h(
    "div",
    { class: "error", role: "alert", "data-code": p.code },
    h("strong", null, title ?? p.title),
    h("p", { class: "error-detail" }, h("code", null, p.code), " ", p.message),
    p.fields.length > 0 ? h("ul", null, p.fields.map((f) => h("li", null, h("code", null, f.field || "request"), " ", f.description))) : null,
    p.traceId ? h("p", { class: "muted small" }, "Reference for support: trace ", h("code", null, p.traceId)) : null,
    loginHint || actions.length > 0 ? h("p", { class: "actions" }, loginHint, actions) : null,
  );
}

/**
 * Shows an error on a form: each violated field gets its message beside it
 * (and aria-invalid); the box above the form lists what is left.
 */
export function showFormError(form: HTMLFormElement, err: unknown): void {
  clearFormErrors(form);
  const p = describeError(err);
  let first: HTMLElement | undefined;
  for (const f of p.fields) {
    const input = form.querySelector<HTMLElement>(`[name="${CSS.escape(f.field)}"]`);
    if (!input) continue;
    const id = `${input.id || f.field.replace(/\W/g, "-")}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.insertAdjacentElement("afterend", h("span", { class: "field-error", id, "data-field": f.field }, f.description));
    first ??= input;
  }
  form.prepend(h("div", { class: "form-errors" }, errorBox(err)));
  (first ?? form).focus?.();
}

export function clearFormErrors(form: HTMLFormElement): void {
  form.querySelectorAll(".field-error, .form-errors").forEach((e) => e.remove());
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}
