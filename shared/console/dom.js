// Building the page from elements and text nodes only: every value, whatever it holds,
// is shown as text, never read as markup.

/** An element: `h("a", {href: "#/x", onclick}, "text", child, [more])`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces what `el` holds. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A value as text: strings as they are, the rest as JSON. */
export function text(value) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A JSON value, indented, in a <pre>. */
export function pre(value, props = {}) {
  return h("pre", { class: "json", ...props }, JSON.stringify(value, null, 2));
}

/** A status as a badge. */
export function badge(status, props = {}) {
  const s = String(status ?? "—");
  return h("span", { class: `badge badge-${s.toLowerCase().replace(/[^a-z]/g, "")}`, ...props }, s);
}

/** A table of `rows` (arrays of cells) under `head`. */
export function table(head, rows, props = {}) {
  return h(
    "table",
    props,
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((c) => h("td", {}, c)))))),
  );
}

/** A short time: the date and time of an ISO string, in the browser's zone. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
