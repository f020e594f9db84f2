// The web console end to end: the real `automations serve`, a loopback receiver, and
// Debian's headless Chromium driven by playwright-core. Run by tests/run.sh after cargo
// builds the binary:
//   AUTOMATIONS_BIN=target/debug/automations node --test tests/console/console.test.mjs
// Screenshots of the pages the README shows are saved under docs/screenshots/.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = resolve(ROOT, process.env.AUTOMATIONS_BIN || "target/debug/automations");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(ROOT, "docs/screenshots");
const OPERATOR_KEY = "op_console_test_operator_key_0123456789abcdef";
const HOSTILE = "<img src=x onerror=alert(1)>";
const POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** A loopback receiver that answers 200 and keeps what it got. */
function startReceiver() {
  const got = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      got.push({ headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
  });
  return new Promise((ok) =>
    server.listen(0, "127.0.0.1", () => ok({ url: `http://127.0.0.1:${server.address().port}/hook`, got, server })),
  );
}

function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The real binary on a free port with its own data directory. */
async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "console-test-"));
  const port = await freePort();
  const child = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dir], {
    env: {
      ...process.env,
      AUTOMATIONS_OPERATOR_KEY: OPERATOR_KEY,
      AUTOMATIONS_ALLOW_NETWORKS: "127.0.0.0/8",
      AUTOMATIONS_RETRY_SCHEDULE: "1,1",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  await until("the server to answer", async () => {
    try {
      return (await fetch(`${base}/healthz`)).ok;
    } catch {
      return false;
    }
  });
  return { base, child, dir };
}

function api(base, key) {
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

describe("the web console", () => {
  let server;
  let receiver;
  let browser;
  let operator;
  const keys = {};
  const dialogs = [];
  const problems = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    receiver = await startReceiver();
    server = await startServer();
    operator = api(server.base, OPERATOR_KEY);
    assert.equal((await operator("POST", "/v1/teams", { name: "acme" })).status, 201);
    for (const role of ["admin", "member", "ingest"]) {
      const granted = await operator("POST", "/v1/teams/acme/api-keys", { user: `${role}-user`, role });
      assert.equal(granted.status, 201);
      keys[role] = granted.body.key;
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    await browser?.close();
    receiver?.server.close();
    if (server) {
      const exited = new Promise((ok) => server.child.once("exit", ok));
      server.child.kill("SIGTERM");
      await exited;
      rmSync(server.dir, { recursive: true, force: true });
    }
  });

  /** A fresh page (its own sessionStorage) that records dialogs and script errors. */
  async function page() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const p = await context.newPage();
    p.on("dialog", async (d) => {
      dialogs.push(d.message());
      await d.dismiss();
    });
    p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    p.on("console", (m) => {
      if (m.type() === "error" && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    return p;
  }

  async function signIn(p, role) {
    await p.goto(server.base + "/");
    await p.fill("#team", "acme");
    await p.fill("#key", keys[role]);
    await p.click("#sign-in");
  }

  test("/ and its files carry the strict policy, and nothing needs the network", async () => {
    for (const path of ["/", "/console/app.js", "/console/style.css"]) {
      const res = await fetch(server.base + path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-security-policy"), POLICY, path);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(res.headers.get("x-frame-options"), "DENY", path);
    }
    assert.match((await fetch(server.base + "/console/app.js")).headers.get("content-type"), /^text\/javascript/);
    const html = await (await fetch(server.base + "/")).text();
    assert.doesNotMatch(html, /https?:\/\//, "the page loads nothing from elsewhere");
    assert.equal((await fetch(server.base + "/console/nope.js")).status, 404);
    assert.equal((await fetch(server.base + "/console/..%2Fapp.js")).status, 404);
  });

  test("an admin signs in, creates an integration and an automation through the forms, and sees a field error", async () => {
    const p = await page();
    await signIn(p, "admin");
    await p.waitForSelector("#whoami");
    assert.equal(await p.textContent("#whoami"), "admin-user (admin)");
    const stored = await p.evaluate(() => ({ session: sessionStorage.getItem("automations.key"), local: localStorage.length }));
    assert.equal(stored.session, keys.admin, "the key is in sessionStorage");
    assert.equal(stored.local, 0, "and nothing in localStorage");

    // The integration, through its form.
    await p.click('nav a[href="#/integrations"]');
    await p.waitForSelector("#integration-form");
    await p.fill("#f-name", "ci");
    await p.fill("#f-url", receiver.url);
    await p.click("#create-integration");
    await p.waitForSelector('tr[data-integration="ci"]');
    // A bad URL is refused next to its field.
    await p.fill("#f-name", "bad");
    await p.fill("#f-url", "ftp://example.com/x");
    await p.click("#create-integration");
    const urlError = await p.waitForSelector('.field-error[data-field="url"]:not([hidden])');
    assert.match(await urlError.textContent(), /url/i);
    // The test button shows the receiver's answer.
    await p.click('button[data-test="ci"]');
    await p.waitForSelector("#test-answer");
    assert.match(await p.textContent("#test-result"), /HTTP 200/);

    // The automation: an invalid regex first.
    await p.click('nav a[href="#/automations"]');
    await p.click("#new-automation");
    await p.waitForSelector("#automation-form");
    await p.fill("#f-name", "deploy-on-production");
    await p.fill("#f-scope-name", "model");
    await p.fill("#f-scope-collection", "resnet");
    await p.selectOption("#f-event-type", "ADD_ARTIFACT_ALIAS");
    await p.fill("#f-event-filter", '{"alias": {"$regex": "(unclosed"}}');
    await p.selectOption("#f-action-integration", { label: "ci (webhook)" });
    await p.fill("#f-action-payload", '{"event_type": "DEPLOY", "alias": "${alias}", "by": "${event_author}"}');
    await p.click("#save");
    const filterError = await p.waitForSelector('.field-error[data-field="event.filter"]:not([hidden])');
    assert.match(await filterError.textContent(), /regex/i);
    assert.equal(await p.getAttribute("#f-event-filter", "aria-invalid"), "true");
    const listed = await operator("GET", "/v1/teams/acme/automations");
    assert.equal(listed.body.automations.length, 0, "nothing was stored");
    // The preview says what a draft would do, without sending.
    await p.fill("#f-event-filter", '{"alias": {"$regex": "^prod"}}');
    await p.click("#preview");
    await p.waitForSelector("#preview-verdict");
    assert.equal(await p.textContent("#preview-verdict"), "It would fire.");
    assert.equal(receiver.got.length, 1, "a preview sends nothing (the one request is the test)");
    // A bad example event is named beside the preview, not in the form.
    const example = await p.inputValue("#preview-event");
    await p.fill("#preview-event", '{"event_type": "NOPE", "registry": "model"}');
    await p.click("#preview");
    const refused = await p.waitForSelector("#preview-result .form-error");
    assert.match(await refused.textContent(), /event_type/);
    await p.fill("#preview-event", example);
    // Then fixed, it is created.
    await p.click("#save");
    await p.waitForSelector("h1 >> text=deploy-on-production");
    assert.match(p.url(), /#\/automations\/[0-9a-z]+$/);
    assert.deepEqual(problems, []);
    await p.context().close();
  });

  test("an event sent through the API shows as an execution, its page renders values as text, and Retry sends it again", async () => {
    const ingest = api(server.base, keys.ingest);
    const event = {
      id: "evt-hostile",
      event_type: "ADD_ARTIFACT_ALIAS",
      registry: "model",
      author: HOSTILE,
      artifact: { collection: "resnet", version: "v4", alias: "production", metadata: { note: HOSTILE } },
    };
    assert.equal((await ingest("POST", "/v1/teams/acme/events", event)).status, 202);
    await until("the delivery", () => receiver.got.length === 2);

    const p = await page();
    await signIn(p, "admin");
    await p.waitForSelector("#whoami");
    await p.click('nav a[href="#/executions"]');
    const row = await p.waitForSelector("#executions tbody tr");
    await until("the execution to finish", async () => {
      await p.selectOption("#status-filter", "FINISHED");
      return (await p.$$("#executions tbody tr")).length === 1;
    });
    await p.selectOption("#status-filter", "FAILED");
    await p.waitForSelector("#no-executions");
    await p.selectOption("#status-filter", "");
    await p.waitForSelector("#executions tbody tr");
    assert.ok(row);
    await p.click("#executions tbody tr a");
    await p.waitForSelector("#payload");
    const payload = JSON.parse(await p.textContent("#payload"));
    assert.deepEqual(payload, { event_type: "DEPLOY", alias: "production", by: HOSTILE });
    assert.equal(await p.$$eval("main img", (imgs) => imgs.length), 0, "no markup was made from the value");
    assert.equal((await p.$$("#attempts tbody tr")).length, 1);
    await p.screenshot({ path: join(SHOTS, "execution.png"), fullPage: true });

    await p.click("#retry");
    await until("the retried delivery", () => receiver.got.length === 3);
    await until("the second attempt on the page", async () => {
      await p.evaluate(() => window.dispatchEvent(new HashChangeEvent("hashchange")));
      await p.waitForSelector("#attempts");
      return (await p.$$("#attempts tbody tr")).length === 2;
    });

    // The automations list shows the last execution's status.
    await p.click('nav a[href="#/automations"]');
    const listed = await p.waitForSelector('tr[data-automation="deploy-on-production"]');
    assert.match(await listed.textContent(), /FINISHED/);
    await p.screenshot({ path: join(SHOTS, "automations.png"), fullPage: true });
    assert.deepEqual(dialogs, [], "no script ran from an event value");
    assert.deepEqual(problems, []);
    await p.context().close();
  });

  test("recent events say why an automation did not fire, as text", async () => {
    const ingest = api(server.base, keys.ingest);
    const miss = {
      id: "evt-miss",
      event_type: "ADD_ARTIFACT_ALIAS",
      registry: "model",
      author: HOSTILE,
      artifact: { collection: "resnet", version: "v5", alias: HOSTILE },
    };
    assert.equal((await ingest("POST", "/v1/teams/acme/events", miss)).status, 202);
    const p = await page();
    await signIn(p, "admin");
    await p.waitForSelector("#whoami");
    await until("the event to be evaluated", async () => {
      await p.goto(server.base + "/#/events");
      await p.waitForSelector("#events");
      return (await p.$('article[data-event="evt-miss"]')) !== null;
    });
    const card = await p.$('article[data-event="evt-miss"]');
    const reason = await card.$('li.not-fired[data-reason="filter"]');
    assert.ok(reason, "the automation's filter is named");
    assert.match(await reason.textContent(), /deploy-on-production did not fire \(filter, alias\)/);
    assert.match(await card.textContent(), /alias <img src=x onerror=alert\(1\)>/);
    assert.equal(await p.$$eval("main img", (imgs) => imgs.length), 0);
    const hit = await p.$('article[data-event="evt-hostile"] li.fired');
    assert.match(await hit.textContent(), /deploy-on-production fired/);
    await p.screenshot({ path: join(SHOTS, "events.png"), fullPage: true });
    assert.deepEqual(dialogs, []);
    await p.context().close();
  });

  test("an admin disables an automation, sets a secret and reads the audit log", async () => {
    const p = await page();
    await signIn(p, "admin");
    await p.waitForSelector('tr[data-automation="deploy-on-production"]');
    await p.click('button[data-toggle="deploy-on-production"]');
    await until("the automation to be disabled", async () =>
      /disabled/.test(await p.textContent('tr[data-automation="deploy-on-production"]')),
    );
    await p.click('nav a[href="#/secrets"]');
    await p.waitForSelector("#secret-form");
    await p.fill("#f-name", "GH_TOKEN");
    await p.fill("#f-value", "ghp_console_secret_value");
    await p.click("#set-secret");
    await p.waitForSelector('tr[data-secret="GH_TOKEN"]');
    assert.doesNotMatch(await p.content(), /ghp_console_secret_value/, "the value is never shown");
    await p.click('nav a[href="#/audit"]');
    await p.waitForSelector("#audit");
    const trail = await p.textContent("#audit");
    for (const action of ["integration.create", "automation.create", "execution.retry", "secret.set"]) {
      assert.match(trail, new RegExp(action.replace(".", "\\.")), action);
    }
    assert.doesNotMatch(trail, /ghp_console_secret_value/);
    // Sign-out forgets the key.
    await p.click("#sign-out");
    await p.waitForSelector("#sign-in");
    assert.equal(await p.evaluate(() => sessionStorage.getItem("automations.key")), null);
    assert.deepEqual(problems, []);
    await p.context().close();
  });

  test("a member sees no create, change or test buttons, and a refused key is told why", async () => {
    const p = await page();
    await signIn(p, "member");
    await p.waitForSelector('tr[data-automation="deploy-on-production"]');
    assert.equal(await p.textContent("#whoami"), "member-user (member)");
    assert.equal(await p.$("#new-automation"), null, "no create button");
    assert.equal(await p.$("button[data-toggle]"), null, "no enable or disable button");
    assert.equal(await p.$('nav a[href="#/audit"]'), null, "no audit log");
    await p.click('nav a[href="#/integrations"]');
    await p.waitForSelector('tr[data-integration="ci"]');
    assert.equal(await p.$("#integration-form"), null);
    assert.equal(await p.$("button[data-test]"), null);
    await p.click('nav a[href="#/secrets"]');
    await p.waitForSelector('tr[data-secret="GH_TOKEN"]');
    assert.equal(await p.$("#secret-form"), null);
    await p.click('nav a[href="#/executions"]');
    await p.click("#executions tbody tr a");
    await p.waitForSelector("#payload");
    assert.equal(await p.$("#retry"), null, "no retry button");
    await p.goto(server.base + "/#/automations/new");
    assert.match(await p.textContent("main"), /Not allowed/);
    await p.context().close();

    // An ingest key may not read the team: the sign-in says so plainly.
    const q = await page();
    await signIn(q, "ingest");
    const refusal = await q.waitForSelector(".form-error:not([hidden])");
    assert.match(await refusal.textContent(), /^Not allowed: /);
    assert.equal(await q.evaluate(() => sessionStorage.getItem("automations.key")), null);
    await q.context().close();
    assert.deepEqual(dialogs, []);
  });
});
