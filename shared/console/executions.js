// Executions: the team's and an automation's, newest first with a status filter and
// paging, and one execution with the event, the payload as sent (secrets masked), every
// attempt, the result, and Retry.

import { badge, h, mount, pre, table, text, when } from "./dom.js";
import { call, session, teamPath, withQuery } from "./api.js";
import { guarded, select } from "./form.js";

const PAGE = 25;

export async function list(view) {
  const history = h("div", {});
  mount(view, h("h1", {}, "Executions"), h("p", { class: "muted" }, "Every automation of the team, newest first."), history);
  await executionTable(history, teamPath("executions"), { statusFilter: "server" });
}

/**
 * A paged table of the executions at `path`. The team's listing filters by status on the
 * server; an automation's is filtered here (`statusFilter: "client"`).
 */
export async function executionTable(container, path, { statusFilter }) {
  const status = select([["", "All statuses"], "PENDING", "FINISHED", "FAILED"], "", { id: "status-filter" });
  const body = h("div", {});
  const more = h("button", { type: "button", id: "older", hidden: true }, "Older");
  let before = null;
  let shown = [];

  const load = guarded(container, async (current, reset) => {
    const query = { limit: PAGE, before: reset ? null : before };
    if (statusFilter === "server") query.status = status.value;
    const page = await call("GET", withQuery(path, query));
    if (!current()) return;
    if (reset) shown = [];
    const got = (page.executions || []).filter((e) => statusFilter === "server" || !status.value || e.status === status.value);
    shown = shown.concat(got);
    before = page.next_before;
    more.hidden = !before;
    mount(
      body,
      shown.length
        ? table(
            ["Status", "Automation", "Triggered", "Event", "Attempts", "Last answer"],
            shown.map((e) =>
              h(
                "tr",
                { dataset: { execution: e.id } },
                h("td", {}, h("a", { href: `#/executions/${encodeURIComponent(e.id)}` }, badge(e.status))),
                h("td", {}, e.automation_name),
                h("td", {}, h("a", { href: `#/executions/${encodeURIComponent(e.id)}` }, when(e.triggered_at))),
                h("td", {}, `${text(e.event && e.event.event_type)} ${text(e.event && e.event.id)}`),
                h("td", {}, String((e.attempts || []).length)),
                h("td", {}, lastAnswer(e)),
              ),
            ),
            { id: "executions" },
          )
        : h("p", { class: "muted", id: "no-executions" }, "No executions."),
    );
  });
  status.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  mount(container, h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status "), status), body, more);
  await load(true);
}

function lastAnswer(e) {
  const attempts = e.attempts || [];
  const last = attempts[attempts.length - 1];
  if (!last) return "—";
  return last.status_code ? `HTTP ${last.status_code}` : text(last.error);
}

export async function detail(view, id) {
  const [e, integrations] = await Promise.all([call("GET", teamPath("executions", id)), call("GET", teamPath("integrations"))]);
  const names = new Map((integrations.integrations || []).map((i) => [i.id, i.name]));
  const retry =
    session.isAdmin && e.status !== "PENDING"
      ? h(
          "button",
          {
            type: "button",
            id: "retry",
            onclick: async (ev) => {
              ev.target.disabled = true;
              try {
                await call("POST", teamPath("executions", e.id, "retry"));
                await detail(view, id);
              } catch (err) {
                ev.target.disabled = false;
                mount(problem, err.describe ? err.describe() : String(err));
                problem.hidden = false;
              }
            },
          },
          "Retry",
        )
      : null;
  const problem = h("p", { class: "form-error", role: "alert", hidden: true });
  const action = e.action || {};
  mount(
    view,
    h("div", { class: "title" }, h("h1", {}, "Execution ", badge(e.status, { id: "execution-status" })), retry),
    problem,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Automation"),
      h("dd", {}, h("a", { href: `#/automations/${encodeURIComponent(e.automation_id)}` }, e.automation_name)),
      h("dt", {}, "Triggered"), h("dd", {}, when(e.triggered_at)),
      h("dt", {}, "Event"),
      h("dd", {}, `${text(e.event && e.event.event_type)} `, h("code", {}, text(e.event && e.event.id)), " · ", h("a", { href: "#/events" }, "recent events")),
      h("dt", {}, "Action"), h("dd", {}, `${text(action.type)}${action.integration ? " via " + (names.get(action.integration) || action.integration) : ""}${action.url ? " to " + action.url : ""}`),
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, e.id)),
    ),
    h("h2", {}, "Payload as sent"),
    action.payload !== undefined
      ? pre(action.payload, { id: "payload" })
      : h("p", { class: "muted" }, text(action.payload_omitted || "No payload (the action sends none, or it is rendered at delivery).")),
    h("h2", {}, "Attempts"),
    (e.attempts || []).length
      ? table(
          ["When", "Status", "Duration", "Outcome", "Error"],
          e.attempts.map((a) => [when(a.at), a.status_code ? String(a.status_code) : "—", `${a.duration_ms} ms`, text(a.outcome), text(a.error)]),
          { id: "attempts" },
        )
      : h("p", { class: "muted" }, "No attempt yet."),
    h("h2", {}, "Result"),
    e.result ? pre(e.result, { id: "result" }) : h("p", { class: "muted" }, "No result yet."),
  );
}
