// Automations: the team's list with each one's last execution, one automation with its
// executions, and the form that creates or edits one (with a preview of what it would do).

import { badge, h, mount, pre, table, text, when } from "./dom.js";
import { ApiError, call, session, teamPath, withQuery } from "./api.js";
import { Form, input, readJson, select, textarea } from "./form.js";
import { executionTable } from "./executions.js";

const EVENT_TYPES = [
  "LINK_ARTIFACT", "ADD_ARTIFACT_ALIAS", "CREATE_ARTIFACT", "UNLINK_ARTIFACT", "ADD_ARTIFACT_TAG",
  "REMOVE_ARTIFACT_TAG", "RUN_STATE", "RUN_METRIC_THRESHOLD", "RUN_METRIC_CHANGE", "RUN_METRIC_ZSCORE",
  "RUN_METRIC_NAN",
];
const ACTION_TYPES = [["webhook", "Webhook"], ["notification", "Slack or Teams message"], ["queue_job", "Queued job"], ["no_op", "Nothing (record only)"]];

export function scopeText(scope) {
  if (!scope) return "—";
  if (scope.type === "team") return "the whole team";
  return `${scope.type} ${scope.name}${scope.collection ? " / " + scope.collection : ""}`;
}

export function actionText(action, integrations) {
  if (!action) return "—";
  const named = integrations && integrations.get(action.integration);
  switch (action.type) {
    case "webhook":
      return `webhook → ${named || action.integration}`;
    case "notification":
      return `message → ${named || action.integration}`;
    case "queue_job":
      return `job ${action.job} → queue ${action.queue}`;
    default:
      return action.type;
  }
}

async function integrationNames() {
  const listed = await call("GET", teamPath("integrations"));
  return new Map((listed.integrations || []).map((i) => [i.id, i.name]));
}

/** The newest execution of each automation: one page of the team's, then one call for each missing. */
async function lastStatuses(automations) {
  const page = await call("GET", withQuery(teamPath("executions"), { limit: 200 }));
  const last = new Map();
  for (const e of page.executions || []) if (!last.has(e.automation_id)) last.set(e.automation_id, e);
  if (page.next_before) {
    const missing = automations.filter((a) => !last.has(a.id)).slice(0, 50);
    await Promise.all(
      missing.map(async (a) => {
        const own = await call("GET", withQuery(teamPath("automations", a.id, "executions"), { limit: 1 }));
        if (own.executions && own.executions[0]) last.set(a.id, own.executions[0]);
      }),
    );
  }
  return last;
}

export async function list(view) {
  const [listed, names] = await Promise.all([call("GET", teamPath("automations")), integrationNames()]);
  const automations = listed.automations || [];
  const last = await lastStatuses(automations);
  const rows = automations.map((a) => {
    const execution = last.get(a.id);
    const toggle = session.isAdmin
      ? h(
          "button",
          {
            type: "button",
            class: "small",
            dataset: { toggle: a.name },
            onclick: async (e) => {
              e.target.disabled = true;
              try {
                await call("PATCH", teamPath("automations", a.id), { enabled: !a.enabled });
                await list(view);
              } catch (err) {
                e.target.disabled = false;
                alertIn(view, err);
              }
            },
          },
          a.enabled ? "Disable" : "Enable",
        )
      : null;
    return h(
      "tr",
      { dataset: { automation: a.name } },
      h("td", {}, h("a", { href: `#/automations/${encodeURIComponent(a.id)}` }, a.name)),
      h("td", {}, scopeText(a.scope)),
      h("td", {}, a.event && a.event.type),
      h("td", {}, actionText(a.action, names)),
      h("td", {}, a.enabled ? "enabled" : "disabled", " ", toggle),
      h(
        "td",
        {},
        execution
          ? h("a", { href: `#/executions/${encodeURIComponent(execution.id)}` }, badge(execution.status), " ", when(execution.triggered_at))
          : h("span", { class: "muted" }, "never ran"),
      ),
    );
  });
  mount(
    view,
    h(
      "div",
      { class: "title" },
      h("h1", {}, "Automations"),
      session.isAdmin ? h("a", { class: "button", id: "new-automation", href: "#/automations/new" }, "New automation") : null,
    ),
    unreadable(listed),
    automations.length
      ? table(["Name", "Scope", "Trigger", "Action", "State", "Last execution"], rows, { id: "automations" })
      : h("p", { class: "muted" }, "No automations yet."),
  );
}

function unreadable(listed) {
  const bad = listed.unreadable || [];
  if (!bad.length) return null;
  return h("p", { class: "form-error" }, `${bad.length} stored item(s) could not be read: `, bad.map((b) => `${b.id} (${b.error})`).join("; "));
}

function alertIn(view, err) {
  const shown = view.querySelector(".form-error.page-error") || view.insertBefore(h("p", { class: "form-error page-error", role: "alert" }), view.firstChild);
  shown.textContent = err.describe ? err.describe() : String(err);
}

export async function detail(view, id) {
  const [a, names] = await Promise.all([call("GET", teamPath("automations", id)), integrationNames()]);
  const actions = session.isAdmin
    ? h(
        "span",
        { class: "actions" },
        h("a", { class: "button", id: "edit", href: `#/automations/${encodeURIComponent(a.id)}/edit` }, "Edit"),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (!confirm(`Delete the automation ${a.name}? Its executions stay in the history.`)) return;
              try {
                await call("DELETE", teamPath("automations", a.id));
                location.hash = "#/automations";
              } catch (err) {
                alertIn(view, err);
              }
            },
          },
          "Delete",
        ),
      )
    : null;
  const history = h("div", {});
  mount(
    view,
    h("div", { class: "title" }, h("h1", {}, a.name), actions),
    a.description ? h("p", {}, a.description) : null,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "State"), h("dd", {}, a.enabled ? "enabled" : "disabled"),
      h("dt", {}, "Scope"), h("dd", {}, scopeText(a.scope)),
      h("dt", {}, "Trigger"), h("dd", {}, a.event.type),
      h("dt", {}, "Action"), h("dd", {}, actionText(a.action, names)),
      h("dt", {}, "Updated"), h("dd", {}, when(a.updated_at)),
    ),
    h("details", {}, h("summary", {}, "Definition"), pre({ scope: a.scope, event: a.event, action: a.action })),
    h("h2", {}, "Executions"),
    history,
  );
  await executionTable(history, teamPath("automations", a.id, "executions"), { statusFilter: "client" });
}

/** The form for a new automation (`id` null) or an existing one. */
export async function edit(view, id) {
  const [existing, listed] = await Promise.all([
    id ? call("GET", teamPath("automations", id)) : null,
    call("GET", teamPath("integrations")),
  ]);
  const a = existing || {
    name: "",
    enabled: true,
    scope: { type: "registry", name: "", collection: "" },
    event: { type: "ADD_ARTIFACT_ALIAS", filter: { alias: "production" } },
    action: { type: "webhook", payload: { event_type: "DEPLOY", version: "${artifact_version_string}" } },
  };
  const event = a.event || {};
  const action = a.action || {};
  const rule = Object.fromEntries(Object.entries(event).filter(([k]) => !["type", "filter", "states"].includes(k)));
  const integrations = (listed.integrations || []).map((i) => [i.id, `${i.name} (${i.type})`]);
  const form = new Form();
  const f = {
    name: input({ value: a.name, required: true }),
    description: input({ value: a.description || "" }),
    enabled: h("input", { type: "checkbox", checked: a.enabled !== false }),
    scopeType: select([["registry", "Registry"], ["project", "Project"], ["team", "Whole team"]], a.scope.type),
    scopeName: input({ value: a.scope.name || "" }),
    collection: input({ value: a.scope.collection || "", placeholder: "any collection" }),
    eventType: select(EVENT_TYPES, event.type),
    filter: textarea(event.filter ? JSON.stringify(event.filter, null, 2) : "", { rows: 4, placeholder: '{"alias": {"$regex": "^prod"}}' }),
    states: input({ value: (event.states || []).join(", "), placeholder: "FAILED, FINISHED" }),
    rule: textarea(Object.keys(rule).length ? JSON.stringify(rule, null, 2) : "", { rows: 4, placeholder: '{"metric": "loss", "agg": "AVERAGE", "window": 5, "op": "$gt", "threshold": 0.5}' }),
    actionType: select(ACTION_TYPES, action.type),
    integration: select([["", "—"], ...integrations], action.integration || ""),
    payload: textarea(action.payload !== undefined ? JSON.stringify(action.payload, null, 2) : "", { rows: 8 }),
    title: input({ value: action.title || "" }),
    message: textarea(action.message || "", { rows: 3 }),
    severity: select(["INFO", "WARN", "ERROR"], action.severity || "INFO"),
    queue: input({ value: action.queue || "" }),
    job: input({ value: action.job || "" }),
    overrides: textarea(action.overrides !== undefined ? JSON.stringify(action.overrides, null, 2) : "", { rows: 4 }),
  };
  const rows = {
    name: form.field("name", "Name", f.name),
    description: form.field("description", "Description", f.description),
    enabled: form.field("enabled", "Enabled", f.enabled),
    scopeType: form.field("scope.type", "Scope", f.scopeType),
    scopeName: form.field("scope.name", "Project or registry", f.scopeName),
    collection: form.field("scope.collection", "Collection", f.collection, "Leave empty for every collection."),
    eventType: form.field("event.type", "Trigger", f.eventType),
    filter: form.field("event.filter", "Filter (JSON)", f.filter, "Over the event's fields: alias, tag, artifact.collection, run.user, … with $regex, $in, $gt and the other operators."),
    states: form.field("event.states", "Run states", f.states),
    rule: form.field("event", "Metric rule (JSON)", f.rule),
    actionType: form.field("action.type", "Action", f.actionType),
    integration: form.field("action.integration", "Integration", f.integration),
    payload: form.field("action.payload", "Payload template (JSON)", f.payload, "${artifact_version_string}, ${alias}, ${run_name}, … and team secrets as ${SECRET_NAME}, which the history shows as ***."),
    title: form.field("action.title", "Title", f.title),
    message: form.field("action.message", "Message", f.message),
    severity: form.field("action.severity", "Severity", f.severity),
    queue: form.field("action.queue", "Queue", f.queue),
    job: form.field("action.job", "Job", f.job),
    overrides: form.field("action.overrides", "Overrides template (JSON)", f.overrides),
  };
  const sync = () => {
    const type = f.eventType.value;
    rows.scopeName.hidden = f.scopeType.value === "team";
    rows.collection.hidden = f.scopeType.value === "team";
    rows.states.hidden = type !== "RUN_STATE";
    rows.rule.hidden = !type.startsWith("RUN_METRIC_");
    const kind = f.actionType.value;
    rows.integration.hidden = !["webhook", "notification"].includes(kind);
    rows.payload.hidden = kind !== "webhook";
    for (const r of [rows.title, rows.message, rows.severity]) r.hidden = kind !== "notification";
    for (const r of [rows.queue, rows.job, rows.overrides]) r.hidden = kind !== "queue_job";
  };
  for (const control of [f.scopeType, f.eventType, f.actionType]) control.addEventListener("change", sync);
  sync();

  const body = () => {
    const scope = { type: f.scopeType.value };
    if (scope.type !== "team") {
      scope.name = f.scopeName.value.trim();
      if (f.collection.value.trim()) scope.collection = f.collection.value.trim();
    }
    const type = f.eventType.value;
    let trigger = { type };
    if (type.startsWith("RUN_METRIC_")) trigger = { ...(readJson(form, "event") || {}), type };
    const filter = readJson(form, "event.filter");
    if (filter !== undefined) trigger.filter = filter;
    if (type === "RUN_STATE") trigger.states = f.states.value.split(",").map((s) => s.trim()).filter(Boolean);
    const kind = f.actionType.value;
    const act = { type: kind };
    if (kind === "webhook" || kind === "notification") act.integration = f.integration.value;
    if (kind === "webhook") {
      const payload = readJson(form, "action.payload");
      if (payload !== undefined) act.payload = payload;
    }
    if (kind === "notification") Object.assign(act, { title: f.title.value, message: f.message.value, severity: f.severity.value });
    if (kind === "queue_job") {
      Object.assign(act, { queue: f.queue.value.trim(), job: f.job.value.trim() });
      const overrides = readJson(form, "action.overrides");
      if (overrides !== undefined) act.overrides = overrides;
    }
    const out = { name: f.name.value.trim(), enabled: f.enabled.checked, scope, event: trigger, action: act };
    if (f.description.value.trim()) out.description = f.description.value.trim();
    return out;
  };

  const preview = previewPanel(form, body);
  const save = h("button", { type: "submit", id: "save" }, existing ? "Save" : "Create");
  mount(
    view,
    h("h1", {}, existing ? `Edit ${existing.name}` : "New automation"),
    h(
      "form",
      {
        class: "card",
        id: "automation-form",
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          form.clear();
          save.disabled = true;
          try {
            const sent = body();
            const saved = existing
              ? await call("PUT", teamPath("automations", existing.id), sent)
              : await call("POST", teamPath("automations"), sent);
            location.hash = `#/automations/${encodeURIComponent(saved.id)}`;
          } catch (err) {
            form.show(err);
          } finally {
            save.disabled = false;
          }
        },
      },
      form.banner,
      h("fieldset", {}, h("legend", {}, "What"), rows.name, rows.description, rows.enabled),
      h("fieldset", {}, h("legend", {}, "When"), rows.scopeType, rows.scopeName, rows.collection, rows.eventType, rows.filter, rows.states, rows.rule),
      h("fieldset", {}, h("legend", {}, "Then"), rows.actionType, rows.integration, rows.payload, rows.title, rows.message, rows.severity, rows.queue, rows.job, rows.overrides),
      h("div", { class: "buttons" }, save, h("a", { href: existing ? `#/automations/${encodeURIComponent(existing.id)}` : "#/automations" }, "Cancel")),
    ),
    preview,
  );
}

/** Would the draft fire on an example event, and what would it send? Nothing is sent. */
function previewPanel(form, body) {
  const example = textarea(
    JSON.stringify({ event_type: "ADD_ARTIFACT_ALIAS", registry: "model", artifact: { collection: "resnet", version: "v4", alias: "production" } }, null, 2),
    { rows: 6, id: "preview-event" },
  );
  const result = h("div", { id: "preview-result" });
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Preview"),
    h("p", { class: "muted" }, "Whether this draft would fire on an example event, and the request it would send with secrets masked. Nothing is sent or saved."),
    h("label", { for: "preview-event" }, "Example event (JSON)"),
    example,
    h(
      "button",
      {
        type: "button",
        id: "preview",
        onclick: async () => {
          form.clear();
          mount(result);
          try {
            const event = JSON.parse(example.value);
            const answer = await call("POST", teamPath("automations", "preview"), { automation: body(), event });
            const verdict = answer.would_fire ? "It would fire." : `It would not fire: ${text(answer.reason && answer.reason.message)}`;
            mount(result, h("p", { id: "preview-verdict" }, verdict), pre(answer));
          } catch (err) {
            if (err instanceof SyntaxError) {
              mount(result, h("p", { class: "form-error" }, `The example event is not valid JSON: ${err.message}`));
            } else if (err instanceof ApiError && err.field.startsWith("automation.")) {
              // The draft's fields, as the preview names them.
              err.field = err.field.slice("automation.".length);
              form.show(err);
            } else {
              // The example event's (or a problem of the whole request).
              mount(result, h("p", { class: "form-error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
            }
          }
        },
      },
      "Preview",
    ),
    result,
  );
}
