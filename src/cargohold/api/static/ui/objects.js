// What one object offers: share, rename, versions, details, delete (each a dialog or a confirmation).
import { api, bytes, confirmed, dialog, failed, field, h, objectUrl, pathOf, query, toast, when } from "./lib.js";

const enc = encodeURIComponent;

function changed(bucket, key) {
  window.dispatchEvent(new CustomEvent("cargohold:changed", { detail: { bucket, key } }));
}

export function objectMenu(bucket, obj, reload) {
  const name = obj.key.split("/").pop();
  const button = (label, onclick, cls = "") => h("button", { type: "button", class: `small ${cls}`,
    "aria-label": `${label} ${name}`, onclick }, label);
  return [
    button("Share", () => shareDialog(bucket, { key: obj.key })),
    button("Rename", () => renameDialog(bucket, obj, reload)),
    button("Versions", () => versionsDialog(bucket, obj.key, reload)),
    button("Details", () => detailsDialog(bucket, obj)),
    button("Delete", async () => {
      if (!(await confirmed(`Delete ${obj.key}?`))) return;
      try {
        await api("DELETE", objectUrl(bucket, obj.key));
        toast(`Deleted ${name}`);
        reload();
      } catch (e) { failed(e); }
    }, "danger"),
  ];
}

async function renameDialog(bucket, obj, reload) {
  const got = await dialog(`Rename or move ${obj.key}`,
    [field("New key (a / makes folders)", { name: "to_key", value: obj.key, required: true })], { submit: "Rename" });
  if (!got || got.to_key === obj.key) return;
  try {
    await api("POST", `/api/v1/buckets/${enc(bucket)}/rename/${pathOf(obj.key)}`, { to_key: got.to_key });
    toast(`Renamed to ${got.to_key}`);
    reload();
  } catch (e) { failed(e); }
}

async function versionsDialog(bucket, key, reload) {
  const body = h("tbody");
  const list = h("div", { class: "table-wrap" }, h("table", { id: "versions" }, h("thead", {}, h("tr", {},
    h("th", {}, "Version"), h("th", { class: "num" }, "Size"), h("th", {}, "Date"), h("th", {}, h("span", { class: "sr-only" }, "Actions")))), body));
  async function load() {
    let answer;
    try { answer = await api("GET", `${objectUrl(bucket, key)}?versions&limit=100`); } catch (e) { failed(e); return; }
    body.replaceChildren(...answer.versions.map((v) => h("tr", { dataset: { version: v.version_id } },
      h("td", {}, v.delete_marker ? "delete marker" : v.version_id.slice(0, 12), v.is_latest ? h("span", { class: "badge up" }, " latest") : null),
      h("td", { class: "num" }, v.delete_marker ? "—" : bytes(v.size)),
      h("td", {}, when(v.created_at)),
      h("td", { class: "actions" },
        v.delete_marker ? null : h("a", { class: "button small", href: objectUrl(bucket, key, v.version_id), download: key.split("/").pop() }, "Download"),
        v.is_latest || v.delete_marker ? null : h("button", { type: "button", class: "small", onclick: async () => {
          try {
            await api("POST", `/api/v1/buckets/${enc(bucket)}/restore/${pathOf(key)}`, { version_id: v.version_id });
            toast("Version restored"); load(); reload(); changed(bucket, key);
          } catch (e) { failed(e); }
        } }, "Restore"),
        h("button", { type: "button", class: "small danger", onclick: async () => {
          if (!(await confirmed("Delete this version for good?"))) return;
          try { await api("DELETE", objectUrl(bucket, key, v.version_id)); load(); reload(); } catch (e) { failed(e); }
        } }, "Delete")))));
    if (!answer.versions.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No versions.")));
  }
  await load();
  await dialog(`Versions of ${key}`, [list], { submit: null });
}

/** Size, type, ETag, dates and layout, then per part which node holds each share and how it fares. */
async function detailsDialog(bucket, obj) {
  let placed = null;
  try {
    placed = await api("GET", `/api/v1/buckets/${enc(bucket)}/placement/${pathOf(obj.key)}${query({ version_id: obj.version_id })}`);
  } catch (e) { failed(e); }
  const o = placed || obj;
  const row = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "—")];
  const health = placed ? h("span", { class: `badge ${placed.health}`, id: "object-health" }, placed.health) : "unknown";
  const summary = h("dl", { class: "details" },
    row("Bucket", bucket), row("Key", o.key), row("Size", `${bytes(o.size)} (${o.size} bytes)`),
    row("Type", o.content_type), row("ETag", o.etag), row("SHA-256", o.sha256), row("MD5", o.md5),
    row("Created", when(o.created_at)), row("Version", o.version_id),
    row("Layout", placed ? placed.layout : "unknown"), row("Health", health));
  await dialog(obj.key, [summary, ...(placed ? placementTables(placed) : [])], { submit: null });
}

function shareRow(share) {
  const node = share.node;
  const nodeCells = node
    ? [h("td", {}, `node ${node.id}`), h("td", { class: "hide-narrow" }, node.zone),
      h("td", {}, h("span", { class: `badge ${node.status}` }, node.status), " ",
        h("span", { class: `badge ${node.state}` }, node.state), node.enabled ? null : h("span", { class: "badge down" }, " off"))]
    : [h("td", { class: "muted" }, "no node"), h("td", { class: "hide-narrow" }, "—"), h("td", {}, "—")];
  const present = share.state === "ok" ? (share.available ? "present" : "unreachable") : "missing";
  return h("tr", { dataset: { share: String(share.index), node: node ? String(node.id) : "", available: String(share.available) } },
    h("td", { class: "num" }, String(share.index)), ...nodeCells,
    h("td", {}, h("span", { class: `badge ${share.available ? "up" : "down"}` }, present)));
}

function placementTables(placed) {
  if (!placed.parts.length) return [h("p", { class: "muted", id: "placement" }, "Small enough to live in the metadata store: no shares on nodes.")];
  const many = placed.parts.length > 1;
  return [h("div", { id: "placement" }, placed.parts.map((part) => [
    h("h2", {}, many ? `Part ${part.part_number} · ${bytes(part.size)} · ` : "Shares · ",
      h("span", { class: `badge ${part.health}` }, `${part.available} of ${part.shares.length} available, ${part.needed} needed`)),
    h("div", { class: "table-wrap" }, h("table", { class: "shares", dataset: { part: String(part.part_number) } },
      h("caption", { class: "sr-only" }, `Shares of part ${part.part_number}`),
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Index"), h("th", {}, "Node"), h("th", { class: "hide-narrow" }, "Zone"),
        h("th", {}, "Node state"), h("th", {}, "Share"))),
      h("tbody", {}, part.shares.map(shareRow)))),
  ]))];
}

/** Create a share link (password, expiry, download limit) and show it with a copy button. */
export async function shareDialog(bucket, target) {
  const what = target.key ?? `${target.prefix || "(whole bucket)"}`;
  const got = await dialog(`Share ${what}`, [
    h("label", {}, "Password (optional, at least 8 characters)", h("input", { type: "password", name: "password", autocomplete: "new-password", minlength: 8 })),
    h("label", {}, "Expires after (hours, empty: never)", h("input", { type: "number", name: "hours", min: "1", step: "1" })),
    h("label", {}, "Download limit (empty: none)", h("input", { type: "number", name: "max_downloads", min: "1", step: "1" })),
  ], { submit: "Create link" });
  if (!got) return;
  const body = { bucket, ...target };
  if (got.password) body.password = got.password;
  if (got.hours) body.expires_in = Number(got.hours) * 3600;
  if (got.max_downloads) body.max_downloads = Number(got.max_downloads);
  let link;
  try { link = await api("POST", "/api/v1/shares", body); } catch (e) { failed(e); return; }
  const input = h("input", { type: "text", readonly: true, value: link.absolute_url, id: "share-url", "aria-label": "Share link" });
  const copy = h("button", { type: "button", class: "primary", onclick: async () => {
    try { await navigator.clipboard.writeText(link.absolute_url); toast("Link copied"); } catch { input.select(); toast("Press Ctrl+C to copy"); }
  } }, "Copy link");
  await dialog("Share link created", [input, h("div", { class: "row" }, copy),
    h("p", { class: "muted" }, link.has_password ? "Opening it asks for the password." : "Anyone with the link can download.")], { submit: null });
}

export { query };
