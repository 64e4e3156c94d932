// Small helpers shared by every view: elements, the JSON API with the CSRF header, formats, toasts, dialogs.

export const CSRF_COOKIE = "cargohold_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

/** An element: h("button", {class: "x", onclick: fn}, "text", child...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") el.style.cssText = value; // through the CSSOM: the page's CSP allows no style attributes
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = problem && problem.code;
  }
}

const signedOutListeners = [];
export function onSignedOut(fn) { signedOutListeners.push(fn); }

/** Call the JSON API with the session cookie; state-changing calls carry the CSRF token. */
export async function api(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (!["GET", "HEAD"].includes(method)) headers[CSRF_HEADER] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401 && !quiet401) signedOutListeners.forEach((fn) => fn(problem));
    throw new ApiError(response.status, problem);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response;
}

/** A key or prefix as a URL path: each segment escaped, the slashes kept. */
export function pathOf(key) { return key.split("/").map(encodeURIComponent).join("/"); }
export function objectUrl(bucket, key, versionId) {
  const base = `/api/v1/buckets/${encodeURIComponent(bucket)}/objects/${pathOf(key)}`;
  return versionId ? `${base}?version_id=${encodeURIComponent(versionId)}` : base;
}
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  let i = 0; let v = n;
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[i]}`;
}
export function rate(bps) { return bps > 0 ? `${bytes(Math.round(bps))}/s` : "—"; }
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
export function ago(iso) {
  if (!iso) return "never";
  return `${duration((Date.now() - new Date(iso).getTime()) / 1000)} ago`;
}

export function toast(text, kind = "") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 5000);
}

/** Show an error from a failed call, as a toast (or nothing if it was a sign-out). */
export function failed(error) {
  if (error instanceof ApiError && error.status === 401) return;
  toast(error.message || String(error), "error");
}

/**
 * A modal dialog with a form; resolves with the form's values on submit, null on cancel.
 * `fields` is a list of elements (labelled inputs); Esc and the Cancel button close it.
 */
export function dialog(title, fields, { submit = "OK", danger = false, extra = null } = {}) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" },
      h("h2", {}, title), ...fields, extra,
      h("div", { class: "buttons" },
        h("button", { type: "button", value: "cancel", onclick: () => close(null) }, submit ? "Cancel" : "Close"),
        submit ? h("button", { type: "submit", class: danger ? "danger" : "primary" }, submit) : null));
    const box = h("dialog", { "aria-label": title }, form);
    let done = false;
    function close(value) {
      if (done) return;
      done = true;
      box.close();
      box.remove();
      resolve(value);
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      close(Object.fromEntries(new FormData(form).entries()));
    });
    box.addEventListener("cancel", (event) => { event.preventDefault(); close(null); });
    document.body.append(box);
    box.showModal();
    const first = form.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}

export function field(label, attrs) {
  return h("label", {}, label, h("input", { type: "text", ...attrs }));
}

export async function confirmed(text, action = "Delete") {
  return (await dialog(text, [], { submit: action, danger: true })) !== null;
}

/** A fill bar with its percentage for screen readers. */
export function fillBar(fraction, label) {
  const pct = Math.max(0, Math.min(100, fraction * 100));
  const level = pct >= 90 ? "full" : pct >= 75 ? "warn" : "";
  return h("div", { class: `bar ${level}`, role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": pct.toFixed(0), "aria-label": label, title: `${pct.toFixed(1)}%` },
  h("span", { style: `width:${pct.toFixed(1)}%` }));
}
