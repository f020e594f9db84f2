// Secrets: names and dates only. A value can be set (write-only) and a secret deleted;
// no answer ever holds a value.

import { h, mount, table, when } from "./dom.js";
import { call, session, teamPath } from "./api.js";
import { Form, input } from "./form.js";

export async function list(view) {
  const listed = await call("GET", teamPath("secrets"));
  const secrets = listed.secrets || [];
  const problem = h("p", { class: "form-error", role: "alert", hidden: true });
  const rows = secrets.map((s) =>
    h(
      "tr",
      { dataset: { secret: s.name } },
      h("td", {}, h("code", {}, s.name)),
      h("td", {}, when(s.updated_at)),
      h(
        "td",
        {},
        session.isAdmin
          ? h(
              "button",
              {
                type: "button",
                class: "small danger",
                onclick: async () => {
                  if (!confirm(`Delete the secret ${s.name}? Integrations and payloads that use it will fail.`)) return;
                  try {
                    await call("DELETE", teamPath("secrets", s.name));
                    await list(view);
                  } catch (err) {
                    problem.textContent = err.describe ? err.describe() : String(err);
                    problem.hidden = false;
                  }
                },
              },
              "Delete",
            )
          : null,
      ),
    ),
  );
  mount(
    view,
    h("h1", {}, "Secrets"),
    h("p", { class: "muted" }, "Values are write-only: they feed integrations and payloads (as ${NAME}) and are never shown."),
    problem,
    secrets.length ? table(["Name", "Updated", ""], rows, { id: "secrets" }) : h("p", { class: "muted" }, "No secrets yet."),
    session.isAdmin ? setForm(view) : null,
  );
}

function setForm(view) {
  const form = new Form();
  const name = input({ placeholder: "GH_TOKEN" });
  const value = h("input", { type: "password", autocomplete: "new-password" });
  return h(
    "form",
    {
      class: "card",
      id: "secret-form",
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        form.clear();
        try {
          await call("PUT", teamPath("secrets", name.value.trim()), { value: value.value });
          value.value = "";
          await list(view);
        } catch (err) {
          form.show(err);
        }
      },
    },
    h("h2", {}, "Set a secret"),
    form.banner,
    form.field("name", "Name", name),
    form.field("value", "Value", value),
    h("button", { type: "submit", id: "set-secret" }, "Set"),
  );
}
