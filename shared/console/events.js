// Recent events, newest first, each with what evaluation made of it: the executions it
// created, and why each other automation of its scope and type did not fire.

import { h, mount, pre, when } from "./dom.js";
import { call, teamPath, withQuery } from "./api.js";
import { guarded } from "./form.js";

const PAGE = 25;

function summary(event) {
  const where = event.project !== undefined ? `project ${event.project}` : `registry ${event.registry}`;
  const a = event.artifact;
  const r = event.run;
  const parts = [event.event_type, where];
  if (a) parts.push(`${a.collection}:${a.version}${a.alias ? " alias " + a.alias : ""}${a.tag ? " tag " + a.tag : ""}`);
  if (r) parts.push(`run ${r.name || r.id}${r.state ? " " + r.state : ""}`);
  if (event.step !== undefined) parts.push(`step ${event.step}`);
  return parts.join(" · ");
}

function card(record) {
  const { event, evaluation } = record;
  const fired = evaluation.fired || [];
  const missed = evaluation.not_fired || [];
  return h(
    "article",
    { class: "card event", dataset: { event: record.id } },
    h("div", { class: "title" }, h("h3", {}, summary(event)), h("span", { class: "muted" }, when(event.received_at))),
    h("div", { class: "muted" }, "id ", h("code", {}, record.id), event.author ? ` · by ${event.author}` : ""),
    fired.length || missed.length
      ? h(
          "ul",
          { class: "verdicts" },
          fired.map((f) =>
            h("li", { class: "fired" }, "✓ ", h("strong", {}, f.automation_name), " fired: ", h("a", { href: `#/executions/${encodeURIComponent(f.execution_id)}` }, "its execution")),
          ),
          missed.map((n) =>
            h(
              "li",
              { class: "not-fired", dataset: { reason: n.reason } },
              "✗ ",
              h("strong", {}, n.automation_name),
              ` did not fire (${n.reason}${n.field ? ", " + n.field : ""}): `,
              n.message,
            ),
          ),
          evaluation.omitted ? h("li", { class: "muted" }, `and ${evaluation.omitted} more automation(s)`) : null,
        )
      : h("p", { class: "muted" }, "No automation of the team watches this scope and event type."),
    h("details", {}, h("summary", {}, "The event as sent"), pre(event)),
  );
}

export async function list(view) {
  const body = h("div", { id: "events" });
  const more = h("button", { type: "button", id: "older", hidden: true }, "Older");
  let before = null;
  const load = guarded(view, async (current) => {
    const page = await call("GET", withQuery(teamPath("events"), { limit: PAGE, before }));
    if (!current()) return;
    for (const record of page.events || []) body.appendChild(card(record));
    if (!body.children.length) mount(body, h("p", { class: "muted" }, "No events in the last 7 days."));
    before = page.next_before;
    more.hidden = !before;
  });
  more.addEventListener("click", () => load());
  mount(
    view,
    h("h1", {}, "Recent events"),
    h("p", { class: "muted" }, "Why did (or didn't) it fire? Each event as evaluated, kept for 7 days."),
    body,
    more,
  );
  await load();
}
