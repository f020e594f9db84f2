// The API, with the key kept in sessionStorage only: closing the tab, or signing out,
// forgets it.

const KEY = "automations.key";
const TEAM = "automations.team";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.field = error.field || "";
    this.problems = (body && body.problems) || [];
  }

  /** What to tell the user. */
  describe() {
    if (this.status === 401) return "The key was refused (wrong, revoked or missing). Sign in again.";
    if (this.status === 403) return `Not allowed: ${this.message}`;
    return this.message;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  get team() {
    return sessionStorage.getItem(TEAM) || "";
  },
  /** The caller, as GET /v1/teams/{team} names it: {user, role}. */
  caller: null,
  save(team, key) {
    sessionStorage.setItem(TEAM, team);
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(TEAM);
    this.caller = null;
  },
  get isAdmin() {
    return this.caller && (this.caller.role === "admin" || this.caller.role === "operator");
  },
};

/** Calls the API; answers the JSON body (null when empty) or throws an ApiError. */
export async function call(method, path, body) {
  const headers = { authorization: `Bearer ${session.key}` };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const raw = await response.text();
  let value = null;
  if (raw) {
    try {
      value = JSON.parse(raw);
    } catch {
      value = { error: { message: raw.slice(0, 300) } };
    }
  }
  if (!response.ok) throw new ApiError(response.status, value);
  return value;
}

/** A path under the signed-in team, with its segments escaped. */
export function teamPath(...segments) {
  const rest = segments.map((s) => encodeURIComponent(s)).join("/");
  return `/v1/teams/${encodeURIComponent(session.team)}${rest ? "/" + rest : ""}`;
}

/** `path` with the query parameters that are set. */
export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}
