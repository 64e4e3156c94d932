// The admin console: cluster health, nodes (switches, fill, drain, add), background jobs, users and keys.
import { ago, api, bytes, confirmed, dialog, failed, field, fillBar, h, query, toast, when } from "./lib.js";

const enc = encodeURIComponent;

export async function adminView(user) {
  if (user.role !== "admin") {
    return h("section", {}, h("h1", {}, "Admin"), h("p", { class: "error", role: "alert", id: "admin-refused" },
      "The admin console is for admins only: your account is not an admin."));
  }
  const health = h("div", { class: "card", id: "health" });
  const nodes = h("tbody");
  const jobs = h("tbody");
  const users = h("tbody");
  const section = h("section", { "aria-labelledby": "admin-title" }, h("h1", { id: "admin-title" }, "Admin"),
    h("h2", {}, "Cluster health"), health,
    h("h2", {}, "Nodes"), addNodeForm(() => loadNodes()),
    h("div", { class: "table-wrap" }, h("table", { id: "nodes" }, h("thead", {}, h("tr", {},
      h("th", {}, "Node"), h("th", {}, "Zone"), h("th", {}, "State"), h("th", {}, "On"), h("th", {}, "Active"),
      h("th", { class: "num" }, "Used / capacity"), h("th", {}, "Fill"), h("th", { class: "hide-narrow" }, "Seen"),
      h("th", {}, h("span", { class: "sr-only" }, "Actions")))), nodes)),
    h("h2", {}, "Background jobs"),
    h("div", { class: "table-wrap" }, h("table", { id: "jobs" }, h("thead", {}, h("tr", {},
      h("th", {}, "Job"), h("th", {}, "State"), h("th", {}, "Progress"), h("th", { class: "num" }, "Rate"),
      h("th", { class: "hide-narrow" }, "Started"))), jobs)),
    h("h2", {}, "Users"), createUserForm(() => loadUsers()),
    h("div", { class: "table-wrap" }, h("table", { id: "users" }, h("thead", {}, h("tr", {},
      h("th", {}, "User"), h("th", {}, "Role"), h("th", {}, "Disabled"), h("th", { class: "num" }, "Quota"),
      h("th", {}, h("span", { class: "sr-only" }, "Actions")))), users)));

  async function loadHealth() {
    try {
      const r = await api("GET", "/api/v1/health");
      const o = r.objects;
      health.replaceChildren(h("dl", { class: "details" },
        h("dt", {}, "Objects"), h("dd", {}, String(o.total)),
        h("dt", {}, "At full redundancy"), h("dd", { class: "ok" }, String(o.healthy)),
        h("dt", {}, "Degraded"), h("dd", { class: o.degraded ? "error" : "" }, String(o.degraded)),
        h("dt", {}, "Unreadable"), h("dd", { class: o.unreadable ? "error" : "" }, String(o.unreadable)),
        h("dt", {}, "Parts healthy"), h("dd", {}, `${r.parts.healthy} of ${r.parts.total}`),
        h("dt", {}, "Waiting for repair"), h("dd", {}, bytes(r.repair_waiting_bytes)),
        h("dt", {}, "Fill spread"), h("dd", { id: "fill-spread" }, `${r.fill_spread.toFixed(1)} percentage points between the fullest and emptiest node`)));
    } catch (e) { failed(e); }
  }
  async function loadNodes() {
    try {
      const r = await api("GET", "/api/v1/nodes");
      nodes.replaceChildren(...r.nodes.map((n) => nodeRow(n, loadNodes)));
    } catch (e) { failed(e); }
  }
  async function loadJobs() {
    try {
      const r = await api("GET", `/api/v1/jobs${query({ limit: 50 })}`);
      jobs.replaceChildren(...r.jobs.map((j) => h("tr", {},
        h("td", {}, `${j.kind} #${j.id}`), h("td", {}, h("span", { class: "badge" }, j.state)),
        h("td", {}, j.total_bytes ? fillBar(j.progress_bytes / j.total_bytes, `Progress of job ${j.id}`) : bytes(j.progress_bytes)),
        h("td", { class: "num" }, j.rate ? `${bytes(j.rate)}/s` : "—"), h("td", { class: "hide-narrow" }, when(j.started_at)))));
      if (!r.jobs.length) jobs.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No background jobs.")));
    } catch (e) { failed(e); }
  }
  async function loadUsers() {
    try {
      const r = await api("GET", "/api/v1/users");
      users.replaceChildren(...r.users.map((u) => userRow(u, loadUsers)));
    } catch (e) { failed(e); }
  }
  await Promise.all([loadHealth(), loadNodes(), loadJobs(), loadUsers()]);
  const timer = setInterval(() => {
    if (!section.isConnected) { clearInterval(timer); return; }
    if (!document.hidden) { loadHealth(); loadNodes(); loadJobs(); }
  }, 5000);
  return section;
}

function nodeRow(node, reload) {
  const patch = async (change, what) => {
    try { await api("PATCH", `/api/v1/nodes/${node.id}`, change); toast(`Node ${node.id}: ${what}`); } catch (e) { failed(e); }
    reload();
  };
  const switchBox = (name, label) => {
    const box = h("input", { type: "checkbox", checked: node[name], "aria-label": `${label} node ${node.id}`, dataset: { node: String(node.id), switch: name } });
    box.addEventListener("change", () => patch({ [name]: box.checked }, `${name} ${box.checked ? "on" : "off"}`));
    return box;
  };
  return h("tr", { dataset: { node: String(node.id) } },
    h("td", { class: "name" }, `#${node.id} `, h("span", { class: "muted" }, node.url)),
    h("td", {}, node.zone),
    h("td", {}, h("span", { class: `badge ${node.status}` }, node.status), " ", h("span", { class: `badge ${node.state}` }, node.state)),
    h("td", {}, switchBox("enabled", "Enable")), h("td", {}, switchBox("active", "Active")),
    h("td", { class: "num" }, `${bytes(node.used)} / ${bytes(node.capacity)}`),
    h("td", {}, fillBar(node.fill, `Fill of node ${node.id}`)),
    h("td", { class: "hide-narrow" }, ago(node.last_seen)),
    h("td", { class: "actions" }, node.state === "normal" ? h("button", { type: "button", class: "small", "aria-label": `Drain node ${node.id}`,
      onclick: async () => { if (await confirmed(`Drain node ${node.id}? Its shares move to other nodes.`, "Drain")) patch({ state: "draining" }, "draining"); } }, "Drain") : null));
}

function addNodeForm(reload) {
  const form = h("form", { class: "row card", "aria-label": "Add a node" },
    h("label", {}, "Node URL", h("input", { type: "url", name: "url", required: true, placeholder: "http://10.0.0.5:7001" })),
    h("label", {}, "Zone", h("input", { type: "text", name: "zone", placeholder: "default" })),
    h("button", { class: "primary", type: "submit" }, "Add node"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    if (!data.zone) delete data.zone;
    try { await api("POST", "/api/v1/nodes", data); toast("Node added"); form.reset(); reload(); } catch (e) { failed(e); }
  });
  return form;
}

function createUserForm(reload) {
  const form = h("form", { class: "row card", "aria-label": "Create a user" },
    h("label", {}, "User name", h("input", { type: "text", name: "name", required: true, autocomplete: "off" })),
    h("label", {}, "Password", h("input", { type: "password", name: "password", autocomplete: "new-password", minlength: 8 })),
    h("label", {}, "Role", h("select", { name: "role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"))),
    h("button", { class: "primary", type: "submit" }, "Create user"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    if (!data.password) delete data.password;
    try { await api("POST", "/api/v1/users", data); toast(`User ${data.name} created`); form.reset(); reload(); } catch (e) { failed(e); }
  });
  return form;
}

function userRow(user, reload) {
  const url = `/api/v1/users/${enc(user.name)}`;
  const patch = async (change, what) => {
    try { await api("PATCH", url, change); toast(`${user.name}: ${what}`); } catch (e) { failed(e); }
    reload();
  };
  const role = h("select", { "aria-label": `Role of ${user.name}` }, ["user", "admin"].map((r) => h("option", { value: r, selected: r === user.role }, r)));
  role.addEventListener("change", () => patch({ role: role.value }, `role ${role.value}`));
  const disabled = h("input", { type: "checkbox", checked: user.disabled, "aria-label": `Disable ${user.name}` });
  disabled.addEventListener("change", () => patch({ disabled: disabled.checked }, disabled.checked ? "disabled" : "enabled"));
  const b = (label, fn) => h("button", { type: "button", class: "small", "aria-label": `${label} of ${user.name}`, onclick: fn }, label);
  return h("tr", {},
    h("td", {}, user.name), h("td", {}, role), h("td", {}, disabled),
    h("td", { class: "num" }, user.quota_bytes === null ? "none" : bytes(user.quota_bytes)),
    h("td", { class: "actions" },
      b("Quota", async () => {
        const got = await dialog(`Quota of ${user.name}`, [field("Quota in GiB (empty: none)", { type: "number", name: "gib", min: "0", step: "any" })], { submit: "Set" });
        if (got) patch({ quota_bytes: got.gib ? Math.round(Number(got.gib) * 1024 ** 3) : null }, "quota set");
      }),
      b("Reset password", async () => {
        const got = await dialog(`New password for ${user.name}`, [field("New password (at least 8 characters)", { type: "password", name: "password", minlength: 8, required: true, autocomplete: "new-password" })], { submit: "Set password" });
        if (got) patch({ password: got.password }, "password reset");
      }),
      b("Keys", () => keysDialog(user.name))));
}

async function keysDialog(name) {
  const body = h("tbody");
  async function load() {
    try {
      const r = await api("GET", `/api/v1/keys${query({ user: name })}`);
      body.replaceChildren(...r.keys.map((k) => h("tr", {}, h("td", {}, k.key_id), h("td", {}, k.name), h("td", {}, when(k.created_at)),
        h("td", {}, k.revoked_at ? "revoked" : h("button", { type: "button", class: "small danger", onclick: async () => {
          try { await api("DELETE", `/api/v1/keys/${enc(k.key_id)}`); load(); } catch (e) { failed(e); }
        } }, "Revoke")))));
      if (!r.keys.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No API keys.")));
    } catch (e) { failed(e); }
  }
  const shown = h("p", { class: "muted" });
  const create = h("button", { type: "button", onclick: async () => {
    try {
      const k = await api("POST", "/api/v1/keys", { user: name, name: "key from the web page" });
      shown.replaceChildren("New key (shown once): ", h("code", {}, k.token));
      load();
    } catch (e) { failed(e); }
  } }, "Create API key");
  await load();
  await dialog(`API keys of ${name}`, [h("div", { class: "table-wrap" }, h("table", {}, body)), h("div", { class: "row" }, create), shown], { submit: null });
}
