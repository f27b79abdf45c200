// The events machinery: what is committed but not yet published, what is
// received but not yet handled, and the dead letters (events whose handler
// failed for good), each of which can be sent round again.
import type { DeadLetter, GetEventBacklogResponse } from "../../../gen/mesh/v1/events_pb.js";
import { eventAdmin } from "./operator-clients.ts";
import { h, replace } from "../dom.ts";
import { errorBox } from "../errors.ts";
import { dateTime } from "../format.ts";
import type { Panel } from "./console.ts";

function backlogTable(b: GetEventBacklogResponse): HTMLElement {
  const consumers = new Map(b.consumers.map((c) => [c.consumer, c]));
  return h(
    "table",
    { class: "table compact", "data-testid": "backlog" },
    h("thead", null, h("tr", null, h("th", null, "Service"), h("th", { class: "num" }, "unpublished (outbox)"), h("th", { class: "num" }, "pending (inbox)"), h("th", { class: "num" }, "dead"))),
    h(
      "tbody",
      null,
      b.sources.map((s) => {
        const c = consumers.get(s.source);
        return h(
          "tr",
          { "data-service": s.source, class: c && c.dead > 0 ? "row-error" : s.unpublished > 0 || (c && c.pending > 0) ? "row-warn" : undefined },
          h("td", null, s.source),
          h("td", { class: "num" }, s.unpublished),
          h("td", { class: "num" }, c ? c.pending : "—"),
          h("td", { class: "num" }, c ? c.dead : "—"),
        );
      }),
    ),
  );
}

export function eventsPanel(): Panel {
  const backlog = h("div");
  const dead = h("div");
  const element = h("section", { "data-testid": "events" }, h("h2", null, "Events in flight"), backlog, h("h2", null, "Dead letters"), dead);
  // Redrawn only when the list changed, so an opened payload stays open.
  let drawn: string | undefined;

  function deadLetters(letters: DeadLetter[], refresh: () => void): HTMLElement {
    if (letters.length === 0) return h("p", { class: "muted", "data-testid": "dead-letters" }, "None. Every event was handled.");
    return h(
      "table",
      { class: "table compact", "data-testid": "dead-letters" },
      h("thead", null, h("tr", null, h("th", null, "Consumer"), h("th", null, "Event"), h("th", null, "Last error"), h("th", { class: "num" }, "Attempts"), h("th", null, "Failed"), h("th"))),
      h(
        "tbody",
        null,
        letters.map((d) => {
          const status = h("span");
          return h(
            "tr",
            { "data-event": d.eventId },
            h("td", null, d.consumer),
            h("td", null, h("code", null, d.eventType), h("div", { class: "muted small" }, `from ${d.source}, id ${d.eventId}`), h("details", null, h("summary", null, "payload"), h("pre", null, d.payloadJson))),
            h("td", { class: "small" }, d.error),
            h("td", { class: "num" }, d.attempts),
            h("td", { class: "small" }, dateTime(d.failedAt)),
            h(
              "td",
              null,
              h(
                "button",
                {
                  type: "button",
                  onclick: () =>
                    eventAdmin.retryDeadLetter({ consumer: d.consumer, eventId: d.eventId }).then(
                      () => ((status.textContent = "queued again"), refresh()),
                      (err: unknown) => replace(status, errorBox(err)),
                    ),
                },
                "Retry",
              ),
              status,
            ),
          );
        }),
      ),
    );
  }

  return {
    element,
    async refresh(signal) {
      const [b, d] = await Promise.all([eventAdmin.getEventBacklog({}, { signal }), eventAdmin.listDeadLetters({ pageSize: 50 }, { signal })]);
      replace(backlog, backlogTable(b));
      const signature = d.deadLetters.map((l) => `${l.consumer}/${l.eventId}/${l.attempts}`).join(",");
      if (signature !== drawn) replace(dead, deadLetters(d.deadLetters, () => void this.refresh(signal)));
      drawn = signature;
    },
  };
}
