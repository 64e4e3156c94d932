// Uploads: every file through tus (tus-js-client), a few at once, with progress, pause/resume/cancel/retry,
// and resume after a reload: tus-js-client keeps each upload's URL in localStorage under a fingerprint
// of bucket, key, size and date, so picking the same file again for the same place continues it.
import { bytes, csrfToken, duration, h, rate, toast } from "./lib.js";
import { eventsAvailable, waitForEvent } from "./events.js";

const PARALLEL = 3;
const STORAGE_PREFIX = "tus::cargohold/";
const items = [];
let panel = null;
let nextId = 1;
let finishedBatch = 0;

export function initUploads() {
  panel = document.getElementById("uploads");
  render();
}

function fingerprintOf(item) {
  return `cargohold/${item.bucket}/${item.key}/${item.file.size}/${item.file.lastModified}`;
}

function askNotifications() {
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
}

function add(bucket, key, file) {
  const item = { id: nextId++, bucket, key, file, state: "queued", sent: 0, total: file.size, samples: [], error: "" };
  items.push(item);
}

export function enqueueFiles(bucket, prefix, files) {
  askNotifications();
  for (const file of files) add(bucket, prefix + (file.webkitRelativePath || file.name), file);
  pump();
}

/** Files and whole folders dropped on the page: keys keep their paths relative to the drop. */
export async function enqueueDrop(bucket, prefix, transfer) {
  askNotifications();
  const entries = [...transfer.items].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null)).filter(Boolean);
  if (!entries.length) { enqueueFiles(bucket, prefix, transfer.files); return; }
  const found = [];
  for (const entry of entries) await walk(entry, "", found);
  for (const { file, path } of found) add(bucket, prefix + path, file);
  pump();
}

async function walk(entry, base, out) {
  if (entry.isFile) {
    out.push({ file: await new Promise((ok, fail) => entry.file(ok, fail)), path: base + entry.name });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (!batch.length) break;
    for (const child of batch) await walk(child, `${base}${entry.name}/`, out);
  }
}

function pump() {
  const running = items.filter((i) => i.state === "uploading").length;
  for (const item of items.filter((i) => i.state === "queued").slice(0, Math.max(0, PARALLEL - running))) start(item);
  render();
}

function start(item) {
  item.state = "uploading";
  item.error = "";
  item.samples = [[performance.now(), item.sent]];
  if (!item.upload) {
    item.upload = new window.tus.Upload(item.file, {
      endpoint: `/tus/${encodeURIComponent(item.bucket)}/`,
      metadata: { key: item.key, filename: item.file.name, filetype: item.file.type || "application/octet-stream" },
      headers: { "X-CSRF-Token": csrfToken() },
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      fingerprint: () => Promise.resolve(fingerprintOf(item)),
      onProgress: (sent) => progress(item, sent),
      onSuccess: () => succeeded(item),
      onError: (error) => {
        item.state = "failed";
        const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        let detail = "";
        try { detail = JSON.parse(error.originalResponse.getBody()).detail; } catch { /* not a problem body */ }
        item.error = detail || (status ? `HTTP ${status}` : "network error");
        render();
        pump();
      },
    });
    item.upload.findPreviousUploads().then((previous) => {
      if (previous.length) item.upload.resumeFromPreviousUpload(previous[0]);
      if (item.state === "uploading") item.upload.start();
    });
  } else {
    item.upload.start();
  }
}

function progress(item, sent) {
  item.sent = sent;
  const now = performance.now();
  item.samples.push([now, sent]);
  while (item.samples.length > 2 && now - item.samples[0][0] > 5000) item.samples.shift();
  scheduleRender();
}

function speed(item) {
  if (item.state !== "uploading" || item.samples.length < 2) return 0;
  const [t0, b0] = item.samples[0];
  const [t1, b1] = item.samples[item.samples.length - 1];
  return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
}

async function succeeded(item) {
  item.sent = item.total;
  item.uploadId = (item.upload.url || "").split("/").pop();
  item.state = "done";
  finishedBatch += 1;
  window.dispatchEvent(new CustomEvent("cargohold:changed", { detail: { bucket: item.bucket, key: item.key } }));
  pump();
  // The server says when an upload is an object: through the event stream when it has one, else by
  // asking for the upload.
  const confirmed = eventsAvailable()
    ? await waitForEvent((e) => e.type === "upload.completed" && e.bucket === item.bucket && e.key === item.key, 5000)
    : await pollUpload(item.uploadId);
  if (!confirmed) await pollUpload(item.uploadId);
  if (!items.some((i) => i.state === "uploading" || i.state === "queued")) finished();
}

async function pollUpload(id) {
  for (let i = 0; i < 10 && id; i += 1) {
    const response = await fetch(`/api/v1/uploads/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    if (!response.ok) return false;
    if ((await response.json()).status === "UPLOADED") return true;
    await new Promise((ok) => setTimeout(ok, 500));
  }
  return false;
}

function finished() {
  if (!finishedBatch) return;
  const text = `${finishedBatch} upload${finishedBatch === 1 ? "" : "s"} finished`;
  finishedBatch = 0;
  toast(text);
  if ("Notification" in window && Notification.permission === "granted") {
    try { new Notification("cargohold", { body: text }); } catch { /* some browsers only notify from a worker */ }
  }
}

function pause(item) { item.state = "paused"; item.upload.abort(); render(); pump(); }
function resume(item) { item.state = "queued"; pump(); }
function cancel(item) {
  if (item.upload) item.upload.abort(true).catch(() => {});
  item.state = "cancelled";
  render();
  pump();
}

/** Uploads a previous page left unfinished (their URLs in localStorage), to pick again or forget. */
function interrupted() {
  const live = new Set(items.map((i) => `tus::${fingerprintOf(i)}`));
  const found = [];
  for (let i = 0; i < localStorage.length; i += 1) {
    const name = localStorage.key(i);
    if (!name || !name.startsWith(STORAGE_PREFIX)) continue;
    const fingerprint = name.split("::")[1];
    if (live.has(`tus::${fingerprint}`)) continue;
    try { found.push({ name, ...JSON.parse(localStorage.getItem(name)) }); } catch { /* not ours */ }
  }
  return found;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function itemView(item) {
  const pct = item.total ? (item.sent / item.total) * 100 : 100;
  const rateNow = speed(item);
  const eta = rateNow > 0 ? duration((item.total - item.sent) / rateNow) : "—";
  const buttons = [];
  const b = (label, fn, cls = "") => h("button", { type: "button", class: `small ${cls}`, "aria-label": `${label} ${item.key}`, onclick: fn }, label);
  if (item.state === "uploading") buttons.push(b("Pause", () => pause(item)));
  if (item.state === "paused") buttons.push(b("Resume", () => resume(item)));
  if (item.state === "failed") buttons.push(b("Retry", () => resume(item)));
  if (["queued", "uploading", "paused", "failed"].includes(item.state)) buttons.push(b("Cancel", () => cancel(item), "danger"));
  const status = { queued: "waiting", uploading: `${rate(rateNow)}, ${eta} left`, paused: "paused", done: "done",
    failed: `failed: ${item.error}`, cancelled: "cancelled" }[item.state];
  return h("div", { class: "upload", dataset: { key: item.key, state: item.state } },
    h("div", { class: "line" }, h("span", { class: "key" }, item.key), h("span", {}, buttons)),
    h("div", { class: "bar", role: "progressbar", "aria-label": `Upload of ${item.key}`, "aria-valuemin": "0",
      "aria-valuemax": "100", "aria-valuenow": pct.toFixed(0) }, h("span", { style: `width:${pct.toFixed(1)}%` })),
    h("div", { class: `line ${item.state === "failed" ? "error" : "muted"}` },
      h("span", {}, `${bytes(item.sent)} of ${bytes(item.total)} (${pct.toFixed(0)}%)`), h("span", {}, status)));
}

function render() {
  if (!panel) return;
  const old = interrupted();
  const shown = items.filter((i) => i.state !== "cancelled");
  if (!shown.length && !old.length) { panel.hidden = true; panel.replaceChildren(); return; }
  panel.hidden = false;
  const active = shown.filter((i) => i.state !== "done");
  const total = shown.reduce((n, i) => n + i.total, 0);
  const sent = shown.reduce((n, i) => n + i.sent, 0);
  const rateAll = shown.reduce((n, i) => n + speed(i), 0);
  const pct = total ? (sent / total) * 100 : 100;
  const collapsed = panel.classList.contains("collapsed");
  const head = h("div", { class: "line" },
    h("h2", { id: "uploads-title" }, `Uploads: ${shown.length - active.length} of ${shown.length} done`),
    h("button", { type: "button", class: "small", "aria-expanded": String(!collapsed), onclick: () => {
      panel.classList.toggle("collapsed");
      render();
    } }, collapsed ? "Show" : "Hide"),
    h("button", { type: "button", class: "small", onclick: () => {
      for (let i = items.length - 1; i >= 0; i -= 1) if (["done", "cancelled"].includes(items[i].state)) items.splice(i, 1);
      render();
    } }, "Clear finished"));
  const summary = h("div", { class: "muted", id: "uploads-total" },
    `${bytes(sent)} of ${bytes(total)} · ${rate(rateAll)} · ${rateAll > 0 ? duration((total - sent) / rateAll) : "—"} left`);
  const bar = h("div", { class: "bar", role: "progressbar", "aria-label": "All uploads", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": pct.toFixed(0) }, h("span", { style: `width:${pct.toFixed(1)}%` }));
  const oldViews = old.map((o) => h("div", { class: "upload", dataset: { state: "interrupted" } },
    h("div", { class: "line" }, h("span", { class: "key" }, `${(o.metadata && o.metadata.key) || "upload"} (${bytes(o.size)})`),
      h("button", { type: "button", class: "small", onclick: () => { localStorage.removeItem(o.name); render(); } }, "Forget")),
    h("div", { class: "muted" }, "Interrupted: pick the same file again in the same folder to continue where it stopped.")));
  panel.replaceChildren(head, summary, bar, ...shown.map(itemView), ...oldViews);
}
