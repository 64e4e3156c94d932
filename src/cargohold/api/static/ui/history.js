// The action history: filters (user, bucket, action, time) and pages of 50, newest first.
import { api, bytes, failed, h, query, when } from "./lib.js";

export async function historyView() {
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Older events");
  const input = (name, label, type = "text", extra = {}) => h("label", {}, label, h("input", { type, name, ...extra }));
  const form = h("form", { class: "row card", "aria-label": "Filter the history" },
    input("user", "User"), input("bucket", "Bucket"),
    input("action", "Action", "text", { placeholder: "object or object.read", list: "history-actions" }),
    h("datalist", { id: "history-actions" }, ["object", "object.create", "object.read", "object.delete", "object.rename",
      "bucket", "upload", "share", "auth", "user", "node"].map((a) => h("option", { value: a }))),
    input("since", "Since", "datetime-local"), input("until", "Until", "datetime-local"),
    h("button", { class: "primary", type: "submit" }, "Apply"));
  let filters = {};
  let cursor = null;
  async function load(fresh) {
    if (fresh) { cursor = null; body.replaceChildren(); }
    let page;
    try { page = await api("GET", `/api/v1/history${query({ ...filters, limit: 50, cursor })}`); } catch (e) { failed(e); return; }
    body.append(...page.events.map((e) => h("tr", {},
      h("td", {}, when(e.at)), h("td", {}, e.user || "—"), h("td", {}, e.action),
      h("td", { class: "name" }, [e.bucket, e.key].filter(Boolean).join("/") || "—"),
      h("td", { class: "num hide-narrow" }, e.size === null ? "—" : bytes(e.size)),
      h("td", {}, h("span", { class: `badge ${e.status < 400 ? "up" : "down"}` }, `${e.status} ${e.result || ""}`)))));
    if (fresh && !page.events.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No events match.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => load(false));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filters = {};
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      filters[k] = k === "since" || k === "until" ? new Date(v).toISOString() : v;
    }
    load(true);
  });
  await load(true);
  return h("section", {}, h("h1", {}, "History"), form, h("div", { class: "table-wrap" }, h("table", { id: "history" },
    h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "User"), h("th", {}, "Action"), h("th", {}, "Target"),
      h("th", { class: "num hide-narrow" }, "Size"), h("th", {}, "Result"))), body)), h("p", {}, more));
}
