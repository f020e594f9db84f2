// Queues and jobs: the team's job queues, and each queue's jobs with their status,
// agent, exit code and the end of their output.

import { badge, h, mount, pre, table, text, when } from "./dom.js";
import { call, session, teamPath, withQuery } from "./api.js";
import { Form, guarded, input, select } from "./form.js";

export async function list(view) {
  const listed = await call("GET", teamPath("queues"));
  const queues = listed.queues || [];
  const form = new Form();
  const name = input({ placeholder: "gpu" });
  mount(
    view,
    h("h1", {}, "Queues and jobs"),
    h("p", { class: "muted" }, "Queued-job actions put jobs here; the team's agents claim them and report how they ended."),
    queues.length
      ? table(
          ["Queue", "Created"],
          queues.map((q) => [h("a", { href: `#/queues/${encodeURIComponent(q.name)}` }, q.name), when(q.created_at)]),
          { id: "queues" },
        )
      : h("p", { class: "muted" }, "No queues yet."),
    session.isAdmin
      ? h(
          "form",
          {
            class: "card",
            novalidate: true,
            onsubmit: async (e) => {
              e.preventDefault();
              form.clear();
              try {
                await call("POST", teamPath("queues"), { name: name.value.trim() });
                await list(view);
              } catch (err) {
                form.show(err);
              }
            },
          },
          h("h2", {}, "New queue"),
          form.banner,
          form.field("name", "Name", name),
          h("button", { type: "submit", id: "create-queue" }, "Create"),
        )
      : null,
  );
}

export async function jobs(view, queue) {
  const status = select([["", "All statuses"], "PENDING", "RUNNING", "FINISHED", "FAILED"], "", { id: "job-status" });
  const body = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Older");
  let before = null;
  let shown = [];
  const load = guarded(view, async (current, reset) => {
    const query = { status: status.value, limit: 25, before: reset ? null : before };
    const page = await call("GET", withQuery(teamPath("queues", queue, "jobs"), query));
    if (!current()) return;
    if (reset) shown = [];
    shown = shown.concat(page.jobs || []);
    before = page.next_before;
    more.hidden = !before;
    mount(
      body,
      shown.length
        ? table(
            ["Status", "Job", "Enqueued", "Agent", "Attempt", "Exit code", ""],
            shown.map((j) => [
              badge(j.status),
              j.job,
              when(j.enqueued_at),
              text(j.agent),
              `${j.attempt} of ${j.max_attempts}`,
              text(j.exit_code),
              h("details", {}, h("summary", {}, "details"), pre(j)),
            ]),
          )
        : h("p", { class: "muted" }, "No jobs."),
    );
  });
  status.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  mount(view, h("h1", {}, `Queue ${queue}`), h("div", { class: "toolbar" }, h("label", { for: "job-status" }, "Status "), status), body, more);
  await load(true);
}
