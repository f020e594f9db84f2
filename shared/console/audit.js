// The audit log (admins): every create, change, delete, test, retry, key grant and
// revocation in the team, newest first. It never holds a secret's value.

import { h, mount, table, text, when } from "./dom.js";
import { call, teamPath, withQuery } from "./api.js";
import { guarded } from "./form.js";

export async function list(view) {
  const body = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Older");
  let before = null;
  let shown = [];
  const load = guarded(view, async (current) => {
    const page = await call("GET", withQuery(teamPath("audit"), { limit: 50, before }));
    if (!current()) return;
    shown = shown.concat(page.entries || []);
    before = page.next_before;
    more.hidden = !before;
    mount(
      body,
      shown.length
        ? table(
            ["When", "Who", "Action", "Target"],
            shown.map((e) => [
              when(e.at),
              `${text(e.actor && e.actor.user)} (${text(e.actor && e.actor.role)})`,
              h("code", {}, e.action),
              `${text(e.target && e.target.type)} ${text(e.target && (e.target.name || e.target.id))}`,
            ]),
            { id: "audit" },
          )
        : h("p", { class: "muted" }, "Nothing yet."),
    );
  });
  more.addEventListener("click", () => load());
  mount(view, h("h1", {}, "Audit log"), body, more);
  await load();
}
