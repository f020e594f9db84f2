// The console's shell: sign-in, the navigation, and a page per hash route.

import { h, mount } from "./dom.js";
import { ApiError, call, session, teamPath } from "./api.js";
import * as automations from "./automations.js";
import * as integrations from "./integrations.js";
import * as secrets from "./secrets.js";
import * as executions from "./executions.js";
import * as events from "./events.js";
import * as queues from "./queues.js";
import * as audit from "./audit.js";

/** Routes: the hash's pattern, the page, and who may open it. */
const ROUTES = [
  [/^#\/automations\/new$/, (v) => automations.edit(v, null), "admin"],
  [/^#\/automations\/([^/]+)\/edit$/, (v, id) => automations.edit(v, id), "admin"],
  [/^#\/automations\/([^/]+)$/, (v, id) => automations.detail(v, id)],
  [/^#\/automations$/, (v) => automations.list(v)],
  [/^#\/executions\/([^/]+)$/, (v, id) => executions.detail(v, id)],
  [/^#\/executions$/, (v) => executions.list(v)],
  [/^#\/events$/, (v) => events.list(v)],
  [/^#\/integrations$/, (v) => integrations.list(v)],
  [/^#\/secrets$/, (v) => secrets.list(v)],
  [/^#\/queues\/([^/]+)$/, (v, name) => queues.jobs(v, name)],
  [/^#\/queues$/, (v) => queues.list(v)],
  [/^#\/audit$/, (v) => audit.list(v), "admin"],
];

const NAV = [
  ["#/automations", "Automations"],
  ["#/executions", "Executions"],
  ["#/events", "Recent events"],
  ["#/integrations", "Integrations"],
  ["#/secrets", "Secrets"],
  ["#/queues", "Queues and jobs"],
  ["#/audit", "Audit log", "admin"],
];

const app = () => document.getElementById("app");

function header() {
  const top = document.getElementById("top");
  if (!session.caller) {
    mount(top, h("span", { class: "brand" }, "Automations"));
    return;
  }
  const here = location.hash.split("/").slice(0, 2).join("/");
  mount(
    top,
    h("span", { class: "brand" }, "Automations"),
    h(
      "nav",
      {},
      NAV.filter(([, , role]) => !role || session.isAdmin).map(([href, label]) =>
        h("a", { href, class: here === href ? "active" : "" }, label),
      ),
    ),
    h(
      "span",
      { class: "who" },
      h("span", { class: "team", title: "team" }, session.team),
      " · ",
      h("span", { id: "whoami" }, `${session.caller.user} (${session.caller.role})`),
      h("button", { type: "button", id: "sign-out", class: "link", onclick: signOut }, "Sign out"),
    ),
  );
}

function signOut() {
  session.clear();
  location.hash = "";
  render();
}

function signIn(message) {
  const team = h("input", { id: "team", name: "team", autocomplete: "off", required: true, value: session.team });
  const key = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true, placeholder: "atm_…" });
  const error = h("div", { class: "form-error", role: "alert", hidden: !message }, message || "");
  const form = h(
    "form",
    {
      class: "card sign-in",
      onsubmit: async (e) => {
        e.preventDefault();
        session.save(team.value.trim(), key.value.trim());
        try {
          await whoAmI();
          if (!location.hash || location.hash === "#") location.hash = "#/automations";
          render();
        } catch (err) {
          session.clear();
          error.textContent = err instanceof ApiError ? err.describe() : String(err);
          error.hidden = false;
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste an API key of your team. It is kept in this tab only, and forgotten when you sign out or close the tab."),
    h("div", { class: "field" }, h("label", { for: "team" }, "Team"), team),
    h("div", { class: "field" }, h("label", { for: "key" }, "API key"), key),
    error,
    h("button", { type: "submit", id: "sign-in" }, "Sign in"),
  );
  mount(app(), form);
}

async function whoAmI() {
  const team = await call("GET", teamPath());
  session.caller = team.caller;
}

async function render() {
  if (!session.key || !session.team) {
    session.caller = null;
    header();
    return signIn();
  }
  if (!session.caller) {
    try {
      await whoAmI();
    } catch (err) {
      const message = err instanceof ApiError ? err.describe() : String(err);
      session.clear();
      header();
      return signIn(message);
    }
  }
  if (!location.hash || location.hash === "#") {
    location.hash = "#/automations";
    return;
  }
  header();
  const view = h("div", { class: "page" });
  mount(app(), view);
  for (const [pattern, page, role] of ROUTES) {
    const found = location.hash.match(pattern);
    if (!found) continue;
    if (role === "admin" && !session.isAdmin) {
      return mount(view, h("p", { class: "form-error", role: "alert" }, "Not allowed: this page is for the team's admins."));
    }
    try {
      await page(view, ...found.slice(1).map(decodeURIComponent));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return signOut();
      mount(view, h("p", { class: "form-error", role: "alert" }, err instanceof ApiError ? err.describe() : String(err)));
    }
    return;
  }
  mount(view, h("p", {}, "No such page. "), h("a", { href: "#/automations" }, "Go to the automations."));
}

window.addEventListener("hashchange", render);
render();
