// The operations console, for the person paged at 3am: the services and who
// calls whom with live health, per-method traffic, recent traces down to
// their log lines, and the events in flight and dead.
//
// It needs an operator token (a service token: `make token`), asked for
// once and kept in this tab only. Every panel refreshes on its own; one that
// fails shows its error and the others keep going.
import { Code, ConnectError } from "@connectrpc/connect";
import { h, replace } from "../dom.ts";
import { errorBox, titledErrorBox } from "../errors.ts";
import { time } from "../format.ts";
import { every } from "../page.ts";
import type { Page } from "../page.ts";
import { operatorToken } from "../session.ts";
import { eventsPanel } from "./events.ts";
import { methodStatsPanel } from "./method-stats.ts";
import { systemMapPanel } from "./system-map.ts";
import { tracesPanel } from "./traces.ts";

const REFRESH_MS = 2000;

export interface Panel {
  readonly element: HTMLElement;
  /** Fetches and redraws; rejects with the call's error. */
  refresh(signal: AbortSignal): Promise<void>;
}

function tokenForm(main: HTMLElement, problem?: unknown): void {
  const input = h("textarea", { id: "f-token", name: "token", rows: 3, spellcheck: "false", placeholder: "eyJhbGciOiJIUzI1NiJ9…" });
  replace(
    main,
    h("h1", null, "Operations console"),
    problem
      ? titledErrorBox(
          "That operator token was not accepted: it is mistyped, expired (a token from make token lasts 10 minutes) or signed with a key this shop does not trust (make token signs with the operator key of the shop it runs beside).",
          problem,
        )
      : null,
    h(
      "form",
      {
        class: "form",
        "data-testid": "token-form",
        onsubmit: (e: Event) => {
          e.preventDefault();
          operatorToken.set(input.value);
          window.dispatchEvent(new HashChangeEvent("hashchange"));
        },
      },
      h(
        "p",
        null,
        "The console is for operators and needs an operator token. On the machine running the shop, run ",
        h("code", null, "make token"),
        " and paste what it prints. The token stays in this browser tab only.",
      ),
      h("div", { class: "field" }, h("label", { for: "f-token" }, "Operator token"), input),
      h("button", { type: "submit" }, "Open the console"),
    ),
  );
}

const isAuthProblem = (err: unknown) => err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied);

export const consolePage: Page = async (main, { params, signal }) => {
  if (!operatorToken.get()) return tokenForm(main);
  const map = systemMapPanel();
  const stats = methodStatsPanel();
  const traces = tracesPanel(params[0]);
  const events = eventsPanel();
  const updated = h("span", { class: "muted small", "data-testid": "updated" });
  let paused = false;
  const pause = h("button", { type: "button", class: "link", onclick: () => ((paused = !paused), (pause.textContent = paused ? "Resume live updates" : "Pause live updates")) }, "Pause live updates");
  const panels: Panel[] = [map, stats, traces, events];
  const slots = panels.map((p) => h("div", { class: "panel-error" }));

  // The first round decides whether the token works.
  try {
    await map.refresh(signal);
  } catch (err) {
    if (signal.aborted) return;
    if (isAuthProblem(err)) {
      operatorToken.clear();
      return tokenForm(main, err);
    }
    throw err;
  }
  main.classList.add("wide");
  replace(
    main,
    h(
      "div",
      { class: "console-head" },
      h("h1", null, "Operations console"),
      updated,
      pause,
      h("button", { type: "button", class: "link", onclick: () => (operatorToken.clear(), tokenForm(main)) }, "Forget token"),
    ),
    h("div", { class: "console" }, panels.map((p, i) => h("div", { class: "panel" }, slots[i], p.element))),
  );

  // Stops the refreshing when the token stops working (it expired, say).
  const live = new AbortController();
  signal.addEventListener("abort", () => live.abort(), { once: true });
  async function refreshAll(): Promise<void> {
    if (paused || live.signal.aborted) return;
    let refused: unknown;
    await Promise.all(
      panels.map((p, i) =>
        p.refresh(live.signal).then(
          () => replace(slots[i]),
          (err: unknown) => {
            if (live.signal.aborted) return;
            if (isAuthProblem(err)) refused = err;
            else replace(slots[i], errorBox(err));
          },
        ),
      ),
    );
    if (refused !== undefined) {
      live.abort();
      operatorToken.clear();
      main.classList.remove("wide");
      return tokenForm(main, refused);
    }
    updated.textContent = `Updated ${time(new Date())}, every ${REFRESH_MS / 1000} s`;
  }
  await refreshAll();
  every(REFRESH_MS, live.signal, refreshAll);
};
