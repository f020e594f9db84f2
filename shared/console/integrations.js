// Integrations: the team's webhooks, Slack and Teams destinations; create one, and test
// one with a real request whose answer is shown.

import { badge, h, mount, pre, table, text } from "./dom.js";
import { call, session, teamPath } from "./api.js";
import { Form, input, select } from "./form.js";

function destination(i) {
  if (i.type === "webhook") return i.url;
  return `URL in secret ${i.webhook_url_secret}${i.channel ? " · " + i.channel : ""}`;
}

export async function list(view) {
  const listed = await call("GET", teamPath("integrations"));
  const integrations = listed.integrations || [];
  const testOut = h("section", { id: "test-result" });
  const rows = integrations.map((i) =>
    h(
      "tr",
      { dataset: { integration: i.name } },
      h("td", {}, i.name),
      h("td", {}, i.type),
      h("td", {}, destination(i)),
      h("td", {}, i.type === "webhook" ? `token ${text(i.access_token_secret)} · signing ${text(i.signing_secret)}` : "—"),
      h("td", {}, i.enabled ? badge("ENABLED") : [badge("DISABLED"), h("div", { class: "reason" }, text(i.disabled_reason))]),
      h(
        "td",
        {},
        session.isAdmin
          ? h("button", { type: "button", class: "small", dataset: { test: i.name }, onclick: () => test(i, testOut) }, "Test")
          : null,
      ),
    ),
  );
  mount(
    view,
    h("h1", {}, "Integrations"),
    integrations.length
      ? table(["Name", "Type", "Destination", "Secrets", "State", ""], rows, { id: "integrations" })
      : h("p", { class: "muted" }, "No integrations yet."),
    testOut,
    session.isAdmin ? createForm(view) : null,
  );
}

async function test(integration, out) {
  mount(out, h("p", { class: "muted" }, `Sending a test through ${integration.name}…`));
  try {
    const answer = await call("POST", teamPath("integrations", integration.id, "test"), {});
    mount(
      out,
      h("h2", {}, `Test of ${integration.name}: `, answer.ok ? badge("OK") : badge("FAILED")),
      h("p", {}, answer.status ? `The receiver answered HTTP ${answer.status}.` : `No answer: ${text(answer.error)}`),
      pre(answer, { id: "test-answer" }),
    );
  } catch (err) {
    mount(out, h("p", { class: "form-error", role: "alert" }, err.describe ? err.describe() : String(err)));
  }
}

function createForm(view) {
  const form = new Form();
  const f = {
    type: select([["webhook", "Webhook"], ["slack", "Slack"], ["teams", "Microsoft Teams"]], "webhook"),
    name: input(),
    url: input({ placeholder: "https://ci.example.com/hooks/deploy" }),
    token: input({ placeholder: "a secret's name, e.g. GH_TOKEN" }),
    signing: input({ placeholder: "a secret's name, e.g. SIGNING_KEY" }),
    urlSecret: input({ placeholder: "the secret that holds the webhook URL" }),
    channel: input({ placeholder: "#ml-alerts" }),
  };
  const rows = {
    type: form.field("type", "Type", f.type),
    name: form.field("name", "Name", f.name),
    url: form.field("url", "URL", f.url),
    token: form.field("access_token_secret", "Access token secret", f.token, "Sent as Authorization: Bearer. Optional."),
    signing: form.field("signing_secret", "Signing secret", f.signing, "Signs each delivery (webhook-signature). Optional."),
    urlSecret: form.field("webhook_url_secret", "Webhook URL secret", f.urlSecret),
    channel: form.field("channel", "Channel", f.channel),
  };
  const sync = () => {
    const webhook = f.type.value === "webhook";
    for (const r of [rows.url, rows.token, rows.signing]) r.hidden = !webhook;
    rows.urlSecret.hidden = webhook;
    rows.channel.hidden = f.type.value !== "slack";
  };
  f.type.addEventListener("change", sync);
  sync();
  return h(
    "form",
    {
      class: "card",
      id: "integration-form",
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        form.clear();
        const body = { type: f.type.value, name: f.name.value.trim() };
        const put = (key, control) => {
          if (control.value.trim()) body[key] = control.value.trim();
        };
        if (body.type === "webhook") {
          put("url", f.url);
          put("access_token_secret", f.token);
          put("signing_secret", f.signing);
        } else {
          put("webhook_url_secret", f.urlSecret);
          if (body.type === "slack") put("channel", f.channel);
        }
        try {
          await call("POST", teamPath("integrations"), body);
          await list(view);
        } catch (err) {
          form.show(err);
        }
      },
    },
    h("h2", {}, "New integration"),
    form.banner,
    Object.values(rows),
    h("button", { type: "submit", id: "create-integration" }, "Create"),
  );
}

