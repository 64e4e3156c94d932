// The server's event stream (GET /api/v1/events), when this gateway has one (its OpenAPI document
// lists it: asking the stream itself would log a 404 in the console where it is missing); without
// it the page asks for each upload instead.
const waiters = new Set();
const recent = [];
let source = null;
let available = false;

export function eventsAvailable() { return available; }

export async function initEvents() {
  if (source) return;
  try {
    const document = await (await fetch("/openapi.json", { credentials: "same-origin" })).json();
    if (!document.paths || !document.paths["/api/v1/events"]) return;
  } catch { return; }
  available = true;
  source = new EventSource("/api/v1/events?type=upload.*");
  source.addEventListener("upload.completed", (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    recent.push(event);
    if (recent.length > 200) recent.shift();
    for (const waiter of [...waiters]) if (waiter.match(event)) waiter.done(true);
  });
}

/** Resolves true when an event matching ``match`` arrives, false after ``ms``. */
export function waitForEvent(match, ms) {
  if (recent.some(match)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const waiter = { match, done: (ok) => { waiters.delete(waiter); clearTimeout(timer); resolve(ok); } };
    const timer = setTimeout(() => waiter.done(false), ms);
    waiters.add(waiter);
  });
}
