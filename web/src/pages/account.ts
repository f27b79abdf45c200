// Sign up and log in. The forms leave checking to the contract: the server's
// field rules answer, and each violation is shown at its field.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { accounts } from "../api.ts";
import { h, replace } from "../dom.ts";
import { clearFormErrors, showFormError } from "../errors.ts";
import type { Page } from "../page.ts";
import { startSession } from "../session.ts";

function field(label: string, name: string, type: string, attrs: Record<string, string> = {}): HTMLElement {
  const id = `f-${name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name, type, ...attrs }));
}

function valueOf(form: HTMLFormElement, name: string): string {
  return (form.elements.namedItem(name) as HTMLInputElement).value;
}

async function submitting(form: HTMLFormElement, work: () => Promise<void>): Promise<void> {
  const button = form.querySelector("button[type=submit]") as HTMLButtonElement;
  button.disabled = true;
  clearFormErrors(form);
  try {
    await work();
  } catch (err) {
    showFormError(form, err);
  } finally {
    button.disabled = false;
  }
}

export const signupPage: Page = (main) => {
  const form: HTMLFormElement = h(
    "form",
    {
      class: "form",
      novalidate: true,
      "data-testid": "signup",
      onsubmit: (e: Event) => {
        e.preventDefault();
        void submitting(form, async () => {
          const email = valueOf(form, "email").trim();
          await accounts.signUp({ email, password: valueOf(form, "password"), displayName: valueOf(form, "display_name").trim() });
          location.hash = `#/login?created=1&email=${encodeURIComponent(email)}`;
        });
      },
    },
    field("Email", "email", "email", { autocomplete: "email" }),
    field("Password (8 characters or more)", "password", "password", { autocomplete: "new-password" }),
    field("Your name", "display_name", "text", { autocomplete: "name" }),
    h("button", { type: "submit" }, "Create account"),
  );
  replace(main, h("h1", null, "Create an account"), form, h("p", null, "Already have one? ", h("a", { href: "#/login" }, "Log in")));
};

export const loginPage: Page = (main, { query }) => {
  const form: HTMLFormElement = h(
    "form",
    {
      class: "form",
      novalidate: true,
      "data-testid": "login",
      onsubmit: (e: Event) => {
        e.preventDefault();
        void submitting(form, async () => {
          const res = await accounts.login({ email: valueOf(form, "email").trim(), password: valueOf(form, "password") });
          const user = res.user!;
          startSession(res.token, res.expiresAt ? timestampMs(res.expiresAt) : Date.now() + 3_600_000, { id: user.id, email: user.email, displayName: user.displayName });
          location.hash = query.get("next") ? `#/${query.get("next")}` : "#/";
        });
      },
    },
    field("Email", "email", "email", { autocomplete: "email", value: query.get("email") ?? "" }),
    field("Password", "password", "password", { autocomplete: "current-password" }),
    h("button", { type: "submit" }, "Log in"),
  );
  replace(
    main,
    h("h1", null, "Log in"),
    query.get("created") ? h("p", { class: "ok", role: "status" }, "Your account is ready. Log in to start shopping.") : null,
    form,
    h("p", null, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
  );
};
