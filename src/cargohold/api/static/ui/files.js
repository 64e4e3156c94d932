// Buckets, the object browser (folders, breadcrumbs, pages, filter, sort) and the actions on objects.
import { api, bytes, confirmed, dialog, failed, field, h, objectUrl, query, toast, when } from "./lib.js";
import { enqueueFiles, enqueueDrop } from "./uploads.js";
import { objectMenu, shareDialog } from "./objects.js";

const PAGE = 200;
const enc = encodeURIComponent;

export async function bucketsView() {
  const body = h("tbody");
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "sr-only" }, "Buckets"),
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Versioning"),
      h("th", { class: "hide-narrow" }, "Layout"), h("th", { class: "hide-narrow" }, "Owner"),
      h("th", { class: "hide-narrow" }, "Created"), h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
    body));
  const nameInput = h("input", { id: "new-bucket", name: "bucket", required: true, pattern: "[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9]",
    title: "3-63 characters: lower-case letters, digits, dots and dashes", placeholder: "my-bucket" });
  const form = h("form", { class: "row card", "aria-label": "Create a bucket" },
    h("label", { for: "new-bucket" }, "New bucket name", nameInput),
    h("button", { class: "primary", type: "submit" }, "Create bucket"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PUT", `/api/v1/buckets/${enc(nameInput.value)}`, {});
      toast(`Bucket ${nameInput.value} created`);
      location.hash = `#/b/${enc(nameInput.value)}/`;
    } catch (e) { failed(e); }
  });
  async function load() {
    let answer;
    try { answer = await api("GET", "/api/v1/buckets"); } catch (e) { failed(e); return; }
    body.replaceChildren(...answer.buckets.map((b) => bucketRow(b, load)));
    if (!answer.buckets.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No buckets yet: create one above.")));
  }
  await load();
  return h("section", { "aria-labelledby": "buckets-title" }, h("h1", { id: "buckets-title" }, "Buckets"), form, table);
}

function bucketRow(bucket, reload) {
  const toggle = h("input", { type: "checkbox", checked: bucket.versioning === "enabled",
    "aria-label": `Versioning of ${bucket.name}` });
  toggle.addEventListener("change", async () => {
    try {
      const status = toggle.checked ? "enabled" : "suspended";
      await api("PUT", `/api/v1/buckets/${enc(bucket.name)}/versioning`, { status });
      toast(`Versioning of ${bucket.name}: ${status}`);
    } catch (e) { toggle.checked = !toggle.checked; failed(e); }
  });
  const remove = h("button", { class: "small danger", type: "button", "aria-label": `Delete bucket ${bucket.name}`,
    onclick: async () => {
      if (!(await confirmed(`Delete the bucket ${bucket.name}? It must be empty.`))) return;
      try { await api("DELETE", `/api/v1/buckets/${enc(bucket.name)}`); toast(`Bucket ${bucket.name} deleted`); reload(); } catch (e) { failed(e); }
    } }, "Delete");
  const grants = h("button", { class: "small", type: "button", "aria-label": `Grants of ${bucket.name}`,
    onclick: () => grantsDialog(bucket.name) }, "Grants");
  return h("tr", {},
    h("td", { class: "name" }, h("a", { href: `#/b/${enc(bucket.name)}/` }, bucket.name)),
    h("td", {}, h("label", {}, toggle, " ", bucket.versioning)),
    h("td", { class: "hide-narrow" }, bucket.layout), h("td", { class: "hide-narrow" }, bucket.owner || "—"),
    h("td", { class: "hide-narrow" }, when(bucket.created_at)), h("td", { class: "actions" }, grants, remove));
}

/** Who else may read, write or manage a bucket: list, add, revoke. */
async function grantsDialog(name) {
  const url = `/api/v1/buckets/${enc(name)}/grants`;
  const body = h("tbody");
  const owner = h("p", { class: "muted" });
  async function load() {
    let answer;
    try { answer = await api("GET", url); } catch (e) { failed(e); return; }
    owner.textContent = `Owner: ${answer.owner || "—"}`;
    body.replaceChildren(...answer.grants.map((g) => h("tr", {}, h("td", {}, g.user), h("td", {}, g.level),
      h("td", { class: "actions" }, h("button", { type: "button", class: "small danger", "aria-label": `Revoke grant of ${g.user}`,
        onclick: async () => { try { await api("DELETE", `${url}/${enc(g.user)}`); load(); } catch (e) { failed(e); } } }, "Revoke")))));
    if (!answer.grants.length) body.append(h("tr", {}, h("td", { colspan: 3, class: "muted" }, "Only the owner and admins.")));
  }
  const user = h("input", { type: "text", id: "grant-user", autocomplete: "off" });
  const level = h("select", { id: "grant-level" }, ["read", "write", "admin"].map((l) => h("option", { value: l }, l)));
  const add = h("button", { type: "button", class: "primary", onclick: async () => {
    try { await api("POST", url, { user: user.value, level: level.value }); user.value = ""; load(); } catch (e) { failed(e); }
  } }, "Grant");
  await load();
  await dialog(`Grants of ${name}`, [owner, h("div", { class: "table-wrap" }, h("table", {}, body)),
    h("div", { class: "row" }, h("label", { for: "grant-user" }, "User", user), h("label", { for: "grant-level" }, "Level", level), add)],
  { submit: null });
}

function crumbs(bucket, prefix) {
  const parts = prefix.split("/").filter(Boolean);
  const items = [h("a", { href: "#/" }, "Buckets"), h("span", { class: "sep", "aria-hidden": "true" }, "/"),
    h("a", { href: `#/b/${enc(bucket)}/`, "aria-current": parts.length ? null : "page" }, bucket)];
  let path = "";
  parts.forEach((part, i) => {
    path += `${part}/`;
    items.push(h("span", { class: "sep", "aria-hidden": "true" }, "/"),
      h("a", { href: `#/b/${enc(bucket)}/${path.split("/").map(enc).join("/")}`,
        "aria-current": i === parts.length - 1 ? "page" : null }, part));
  });
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumbs" }, items);
}

/** The folder ``prefix`` of ``bucket``: pages of ~200 entries, a name filter (a longer prefix). */
export async function browserView(bucket, prefix) {
  const started = performance.now();
  const state = { cursor: null, rows: [], folders: [], sort: { by: "name", desc: false }, filter: "" };
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, onclick: () => load(false) }, "Load more");
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const filter = h("input", { type: "search", id: "filter", placeholder: "Filter by name", "aria-label": "Filter by name" });
  let timer = null;
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.filter = filter.value; load(true); }, 200);
  });
  const picker = h("input", { type: "file", multiple: true, id: "pick-files", class: "sr-only",
    onchange: () => { enqueueFiles(bucket, prefix, picker.files); picker.value = ""; } });
  const folderPicker = h("input", { type: "file", multiple: true, webkitdirectory: true, id: "pick-folder", class: "sr-only",
    onchange: () => { enqueueFiles(bucket, prefix, folderPicker.files); folderPicker.value = ""; } });
  const newFolder = h("button", { type: "button", onclick: async () => {
    const got = await dialog("New folder", [field("Folder name", { name: "name", required: true })], { submit: "Open" });
    if (got && got.name) location.hash = `#/b/${enc(bucket)}/${(prefix + got.name.replace(/\/+$/, "") + "/").split("/").map(enc).join("/")}`;
  } }, "New folder");
  const sortButton = (by, label) => h("button", { class: "sort", type: "button", onclick: () => {
    state.sort = { by, desc: state.sort.by === by ? !state.sort.desc : false };
    render();
  } }, label);
  const table = h("div", { class: "table-wrap" }, h("table", { id: "listing" },
    h("caption", { class: "sr-only" }, `Contents of ${bucket}/${prefix}`),
    h("thead", {}, h("tr", {}, h("th", {}, sortButton("name", "Name")), h("th", { class: "num" }, sortButton("size", "Size")),
      h("th", { class: "hide-narrow" }, sortButton("date", "Modified")), h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
    body));
  const zone = h("section", { class: "drop", "aria-labelledby": "folder-title" },
    h("h1", { id: "folder-title", class: "sr-only" }, `${bucket}/${prefix}`),
    crumbs(bucket, prefix),
    h("div", { class: "toolbar" },
      h("label", { for: "pick-files", class: "button primary", tabindex: "0", role: "button",
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); picker.click(); } } }, "Upload files"), picker,
      h("label", { for: "pick-folder", class: "button", tabindex: "0", role: "button",
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); folderPicker.click(); } } }, "Upload folder"), folderPicker,
      newFolder,
      h("button", { type: "button", onclick: () => shareDialog(bucket, { prefix }) }, "Share folder"),
      h("div", { class: "grow" }, filter), count),
    h("p", { class: "muted hide-narrow" }, "Drop files or folders here to upload them."),
    table, h("p", {}, more));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", (e) => { if (e.target === zone) zone.classList.remove("over"); });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    enqueueDrop(bucket, prefix, e.dataTransfer);
  });

  function sorted(rows) {
    const { by, desc } = state.sort;
    const key = { name: (r) => r.key, size: (r) => r.size, date: (r) => r.created_at }[by];
    const out = [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    return desc ? out.reverse() : out;
  }
  function render() {
    const frag = document.createDocumentFragment();
    if (prefix) {
      const up = prefix.split("/").slice(0, -2).join("/");
      frag.append(h("tr", {}, h("td", { colspan: 4 }, h("a", { href: `#/b/${enc(bucket)}/${up ? up.split("/").map(enc).join("/") + "/" : ""}` }, "⬑ Parent folder"))));
    }
    for (const folder of state.folders) {
      const name = folder.slice(prefix.length);
      frag.append(h("tr", { class: "folder" },
        h("td", { class: "name" }, h("a", { href: `#/b/${enc(bucket)}/${folder.split("/").map(enc).join("/")}` }, name)),
        h("td", { class: "num" }, "—"), h("td", { class: "hide-narrow" }), h("td", { class: "actions" })));
    }
    for (const obj of sorted(state.rows)) frag.append(objectRow(bucket, prefix, obj, () => load(true)));
    if (!state.rows.length && !state.folders.length) frag.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, state.filter ? "Nothing matches the filter." : "This folder is empty.")));
    body.replaceChildren(frag);
    count.textContent = `${state.folders.length} folders, ${state.rows.length} files${state.cursor ? " (more below)" : ""}`;
    more.hidden = !state.cursor;
  }
  // Loads may overlap (a reload after a change, another after the change's event): only the
  // latest one renders, so an answer that was overtaken never brings back a deleted row.
  let latest = 0;
  async function load(fresh) {
    const mine = ++latest;
    const params = { prefix: prefix + state.filter, delimiter: "/", limit: PAGE, cursor: fresh ? null : state.cursor };
    try {
      const page = await api("GET", `/api/v1/buckets/${enc(bucket)}/objects${query(params)}`);
      if (mine !== latest) return;
      if (fresh) { state.rows = []; state.folders = []; }
      state.rows.push(...page.objects);
      state.folders.push(...page.common_prefixes);
      state.cursor = page.next_cursor;
      render();
    } catch (e) { if (mine === latest) failed(e); }
  }
  const onUploaded = (event) => { if (event.detail.bucket === bucket && zone.isConnected) scheduleReload(); };
  let reloadTimer = null;
  function scheduleReload() { clearTimeout(reloadTimer); reloadTimer = setTimeout(() => load(true), 300); }
  window.addEventListener("cargohold:changed", onUploaded);
  const observer = new MutationObserver(() => { if (!zone.isConnected) { window.removeEventListener("cargohold:changed", onUploaded); observer.disconnect(); } });
  await load(true);
  observer.observe(document.getElementById("main"), { childList: true });
  zone.dataset.renderMs = String(Math.round(performance.now() - started));
  return zone;
}

function objectRow(bucket, prefix, obj, reload) {
  const name = obj.key.slice(prefix.length);
  return h("tr", { dataset: { key: obj.key } },
    h("td", { class: "name" }, h("a", { href: objectUrl(bucket, obj.key), download: name.split("/").pop(),
      title: `Download ${name}` }, name)),
    h("td", { class: "num", dataset: { size: String(obj.size) } }, bytes(obj.size)),
    h("td", { class: "hide-narrow" }, when(obj.created_at)),
    h("td", { class: "actions" }, objectMenu(bucket, obj, reload)));
}

/** Every share link the user can see, with revoke. */
export async function sharesView() {
  const body = h("tbody");
  async function load() {
    let answer;
    try { answer = await api("GET", "/api/v1/shares"); } catch (e) { failed(e); return; }
    body.replaceChildren(...answer.shares.map((s) => h("tr", {},
      h("td", { class: "name" }, `${s.bucket}/${s.key ?? s.prefix ?? ""}`),
      h("td", {}, h("span", { class: `badge ${s.status === "active" ? "up" : "down"}` }, s.status)),
      h("td", { class: "hide-narrow" }, s.has_password ? "yes" : "no"),
      h("td", { class: "hide-narrow" }, s.expires_at ? when(s.expires_at) : "never"),
      h("td", { class: "num" }, `${s.downloads}${s.max_downloads ? ` / ${s.max_downloads}` : ""}`),
      h("td", { class: "actions" }, s.revoked_at ? null : h("button", { class: "small danger", type: "button",
        "aria-label": `Revoke link to ${s.key ?? s.prefix}`, onclick: async () => {
          if (!(await confirmed("Revoke this link? It stops working at once.", "Revoke"))) return;
          try { await api("DELETE", `/api/v1/shares/${enc(s.id)}`); load(); } catch (e) { failed(e); }
        } }, "Revoke")))));
    if (!answer.shares.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No share links yet: share a file from its folder.")));
  }
  await load();
  return h("section", {}, h("h1", {}, "Share links"), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Shared"), h("th", {}, "Status"), h("th", { class: "hide-narrow" }, "Password"),
      h("th", { class: "hide-narrow" }, "Expires"), h("th", { class: "num" }, "Downloads"), h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
    body)));
}
