// The page's shell: sign-in, the navigation, and the views behind each #/ address.
import { api, ApiError, csrfToken, h, onSignedOut, toast } from "./lib.js";
import { bucketsView, browserView, sharesView } from "./files.js";
import { historyView } from "./history.js";
import { adminView } from "./admin.js";
import { initUploads } from "./uploads.js";
import { initEvents } from "./events.js";

export const session = { user: null, idleTimeout: 0 };
const main = document.getElementById("main");
const top = document.getElementById("top");

function navLink(href, text) {
  const current = location.hash === href || (href !== "#/" && location.hash.startsWith(href));
  const home = href === "#/" && (location.hash === "" || location.hash === "#/" || location.hash.startsWith("#/b/"));
  return h("a", { href, "aria-current": current || home ? "page" : null }, text);
}

function renderHeader() {
  top.replaceChildren();
  if (!session.user) {
    top.append(h("span", { class: "brand" }, "cargohold"));
    return;
  }
  const admin = session.user.role === "admin";
  top.append(
    h("span", { class: "brand" }, "cargohold"),
    h("nav", { "aria-label": "Main" },
      navLink("#/", "Files"), navLink("#/shares", "Shares"), navLink("#/history", "History"),
      admin ? navLink("#/admin", "Admin") : null),
    h("span", { class: "who" }, h("span", {}, `${session.user.name} (${session.user.role})`),
      h("button", { class: "small", type: "button", onclick: signOut }, "Sign out")));
}

async function signOut() {
  try { await api("POST", "/api/v1/auth/cookie/logout"); } catch { /* already gone */ }
  session.user = null;
  showSignIn("Signed out.");
}

function showSignIn(message) {
  session.user = null;
  renderHeader();
  const error = h("p", { class: "error", role: "alert" }, message && message !== "Signed out." ? message : "");
  const note = message === "Signed out." ? h("p", { class: "muted" }, message) : null;
  const name = h("input", { id: "signin-name", name: "name", autocomplete: "username", required: true });
  const password = h("input", { id: "signin-password", name: "password", type: "password",
    autocomplete: "current-password", required: true });
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { "aria-label": "Sign in" },
    h("label", { for: "signin-name" }, "User name", name),
    h("label", { for: "signin-password" }, "Password", password), button, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.textContent = "";
    try {
      const answer = await api("POST", "/api/v1/auth/cookie/login",
        { name: name.value, password: password.value }, { quiet401: true });
      signedIn(answer);
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401 ? "Wrong user name or password." : e.message;
      button.disabled = false;
      password.select();
    }
  });
  main.replaceChildren(h("div", { class: "card signin" }, h("h1", {}, "Sign in to cargohold"), note, form));
  name.focus();
}

function signedIn(answer, { routed = false } = {}) {
  session.user = answer.user;
  session.idleTimeout = answer.idle_timeout;
  initUploads();
  // Not on the first render's path: the event stream only confirms uploads.
  setTimeout(initEvents, 1000);
  if (routed) renderHeader();
  else route();
}

let routing = 0;
async function route() {
  if (!session.user) return;
  renderHeader();
  const hash = location.hash || "#/";
  const ticket = ++routing;
  const parts = hash.slice(2).split("/").map(decodeURIComponent);
  let view;
  if (parts[0] === "b" && parts[1]) view = browserView(parts[1], parts.slice(2).join("/"));
  else if (parts[0] === "shares") view = sharesView();
  else if (parts[0] === "history") view = historyView();
  else if (parts[0] === "admin") view = sessionReady.then(() => adminView(session.user));
  else view = bucketsView();
  const node = await view;
  if (ticket !== routing) return; // a newer address was asked for meanwhile
  main.replaceChildren(node);
}

export function refresh() { route(); }

onSignedOut((problem) => {
  if (!session.user) return;
  const lapsed = problem && problem.code === "token_expired";
  showSignIn(lapsed ? "Your session ended after a while without activity: sign in again." : "Please sign in again.");
});
window.addEventListener("hashchange", () => { route(); main.focus({ preventScroll: true }); });

let sessionReady = Promise.resolve();

async function start() {
  // No CSRF cookie: not signed in (the session cookie itself is out of a script's reach).
  if (!csrfToken()) { showSignIn(""); return; }
  // Signed in as far as the page can tell: the view's requests go out beside the session check
  // (one round trip less before the first rows); a 401 from either shows the sign-in form.
  const who = api("GET", "/api/v1/auth/cookie", undefined, { quiet401: true });
  sessionReady = who.catch(() => {});
  session.user = { name: "", role: "" };
  route();
  try {
    signedIn(await who, { routed: true });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast(e.message, "error");
    showSignIn("");
  }
}
start();
