// Forms whose fields show the API's errors next to them: the API names the field it
// refused with a dotted path (`event.filter.alias.$regex`), and the field whose path is
// the longest prefix of it shows the message.

import { h } from "./dom.js";
import { ApiError } from "./api.js";

export class Form {
  constructor() {
    this.fields = new Map();
    this.banner = h("div", { class: "form-error", role: "alert", hidden: true });
  }

  /** A labelled control for the API field `path`; `control` is an input, select or textarea. */
  field(path, label, control, hint) {
    const error = h("div", { class: "field-error", role: "alert", hidden: true, dataset: { field: path } });
    control.name = path;
    control.id = `f-${path.replace(/[^a-z0-9]/gi, "-")}`;
    const row = h(
      "div",
      { class: "field" },
      h("label", { for: control.id }, label),
      control,
      hint ? h("div", { class: "hint" }, hint) : null,
      error,
    );
    this.fields.set(path, { control, error, row });
    return row;
  }

  clear() {
    this.banner.hidden = true;
    for (const { error, control } of this.fields.values()) {
      error.hidden = true;
      error.textContent = "";
      control.removeAttribute("aria-invalid");
    }
  }

  /** Shows `problem` next to its field, or above the form when no field matches. */
  show(problem) {
    this.clear();
    if (!(problem instanceof ApiError)) {
      this.banner.textContent = String(problem.message || problem);
      this.banner.hidden = false;
      return;
    }
    const target = this.match(problem.field);
    if (target) {
      target.error.textContent = problem.message;
      target.error.hidden = false;
      target.control.setAttribute("aria-invalid", "true");
      target.control.focus();
    } else {
      this.banner.textContent = problem.describe();
      this.banner.hidden = false;
    }
  }

  /** The field whose path is the longest prefix of the API's `field`. */
  match(field) {
    if (!field) return null;
    let best = null;
    let bestLength = -1;
    for (const [path, entry] of this.fields) {
      if (entry.row.hidden) continue;
      const prefix = field === path || field.startsWith(path + ".") || field.startsWith(path + "[");
      if (prefix && path.length > bestLength) {
        best = entry;
        bestLength = path.length;
      }
    }
    return best;
  }
}

/** Parses the JSON in a textarea, or throws an error naming its field. */
export function readJson(form, path, { optional = true } = {}) {
  const entry = form.fields.get(path);
  const raw = entry.control.value.trim();
  if (!raw) {
    if (optional) return undefined;
    throw new ApiError(400, { error: { field: path, message: `${path}: required` } });
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new ApiError(400, { error: { field: path, message: `${path}: not valid JSON (${e.message})` } });
  }
}

export function input(props = {}) {
  return h("input", { type: "text", autocomplete: "off", spellcheck: false, ...props });
}

export function textarea(value, props = {}) {
  const el = h("textarea", { rows: 6, spellcheck: false, ...props });
  el.value = value ?? "";
  return el;
}

export function select(options, value, props = {}) {
  const el = h(
    "select",
    props,
    options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v }, label);
    }),
  );
  if (value !== undefined) el.value = value;
  return el;
}

/**
 * `load` wrapped for an event listener: a failure is shown at the top of `container`
 * (a refused key signs out), and only the latest call's answer is used (`load` gets a
 * `current()` to check before it shows what it read).
 */
export function guarded(container, load) {
  let generation = 0;
  return async (...args) => {
    const mine = ++generation;
    try {
      await load(() => mine === generation, ...args);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        sessionStorage.clear();
        location.reload();
        return;
      }
      let shown = container.querySelector(":scope > .load-error");
      if (!shown) {
        shown = h("p", { class: "form-error load-error", role: "alert" });
        container.prepend(shown);
      }
      shown.textContent = err instanceof ApiError ? err.describe() : String(err);
    }
  };
}
