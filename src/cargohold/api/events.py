"""``GET /api/v1/events``: the caller's events as server-sent events, and the admins' event settings.

A stream sends each event the caller may see (``service/events.Audience``)
and selected (``type``, repeatable, families like ``upload.*``; ``bucket``)
as ``id``/``event``/``data`` lines, in id order. It starts after
``Last-Event-ID`` (the header a browser's EventSource sends when it
reconnects) or ``after``; without either, from now, and its first line
names the id it starts after, so a client that reconnects with it misses
nothing. While nothing is sent, a comment line every ``HEARTBEAT`` seconds
keeps proxies from closing the connection; it carries the id the stream has
read up to, so a reconnect does not read again what the filters skipped.
``follow=false`` ends the stream once it has reached the events committed
when it began; without a resume point it starts at the oldest event kept.

Streams keep only a cursor: they read from the process's one
:class:`EventFeed`, and a client that reads slowly holds its handler at
``write`` (aiohttp waits for the socket to drain), never a growing buffer.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from cargohold.aborts import begin
from cargohold.api import event_schemas as models
from cargohold.api.auth import principal, require_admin
from cargohold.api.context import SERVICES
from cargohold.api.event_schemas import TYPE_SCHEMA
from cargohold.api.inputs import INT64_MAX, model_body, parse_int
from cargohold.api.native import API, Route, json_response
from cargohold.api.schemas import BUCKET_SCHEMA
from cargohold.domain.events import Event, parse_type_filters
from cargohold.domain.names import validate_bucket
from cargohold.errors import InvalidArgument
from cargohold.service.access import Level
from cargohold.service.events import Selection

#: Seconds of silence after which a stream sends a comment line.
HEARTBEAT = 15.0
#: Seconds a stream keeps the caller's visible buckets before reading them again.
AUDIENCE_TTL = 5.0
#: What an EventSource waits before reconnecting, in milliseconds (the stream's ``retry``).
RETRY_MS = 2000
PAGE = 200
LAST_EVENT_ID = "Last-Event-ID"


def sse(event: Event) -> bytes:
    """One event in the text/event-stream format (its JSON has no newline)."""
    data = json.dumps(event.document(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


def _resume_point(request: web.Request) -> int | None:
    header = request.headers.get(LAST_EVENT_ID)
    if header is not None and header.strip():
        return parse_int(header, LAST_EVENT_ID, maximum=INT64_MAX)
    after = request.query.get("after")
    if after is not None:
        return parse_int(after, "after", maximum=INT64_MAX)
    return None


def _follow(request: web.Request) -> bool:
    values = request.query.getall("follow", [])
    if not values:
        return True
    if len(values) > 1 or values[0] not in ("true", "false"):
        raise InvalidArgument("follow must be given once, as true or false", field="follow")
    return values[0] == "true"


async def stream_events(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    who = principal(request)
    types = parse_type_filters(request.query.getall("type", []))
    bucket = request.query.get("bucket")
    if bucket is not None:
        validate_bucket(bucket)
        await services.access.bucket(who, bucket, Level.READ)
    after = _resume_point(request)
    follow = _follow(request)
    feed = services.events
    await feed.ready.wait()
    if not follow:
        await feed.sync()  # "up to now" includes what the caller has just written
    if after is None:  # a stream that follows starts now; one that does not, at the oldest kept
        after = feed.head if follow else 0
    until = feed.head
    selection = Selection(types, bucket)
    viewer, viewed_at = await feed.audience(who.user_id, who.is_admin), time.monotonic()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await begin(request, response)  # a later failure aborts, never answers twice
    await response.write(f"retry: {RETRY_MS}\nid: {after}\n\n".encode())
    quiet_since = time.monotonic()
    while not feed.closing:
        events = await feed.read(after, PAGE)
        if not follow:
            events = [e for e in events if e.id <= until]
        if events:
            if time.monotonic() - viewed_at > AUDIENCE_TTL:
                await services.auth.active_user(who.user_id)  # disabled meanwhile: the stream ends
                viewer, viewed_at = await feed.audience(who.user_id, who.is_admin), time.monotonic()
            chunk = b"".join(sse(e) for e in events if selection.matches(e) and viewer.sees(e))
            after = events[-1].id
            if chunk:
                await response.write(chunk)
                quiet_since = time.monotonic()
        elif not follow and after >= until:
            break
        else:
            if request.transport is None or request.transport.is_closing():
                return response  # the client went away
            left = HEARTBEAT - (time.monotonic() - quiet_since)
            if left > 0:
                await feed.wait_beyond(after, left)
        if time.monotonic() - quiet_since >= HEARTBEAT:
            await response.write(f": heartbeat\nid: {after}\n\n".encode())
            quiet_since = time.monotonic()
    await response.write_eof()
    return response


async def get_settings(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await request.app[SERVICES].webhooks.settings.get())


async def update_settings(request: web.Request) -> web.Response:
    require_admin(request)
    body = await model_body(request, models.EventSettingsBody)
    settings = await request.app[SERVICES].webhooks.settings.update(body.model_dump())
    return json_response(settings)


EVENTS = API + "/events"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        EVENTS,
        stream_events,
        "Server-sent events of the changes the caller may see (admins: all; others: their own and"
        " those of buckets they own or hold a grant on), in id order. Each event is 'id', 'event'"
        " (its type) and 'data' (JSON: id, time, type, actor_id, bucket, key, version_id, size,"
        " detail). Resume with the Last-Event-ID header or ?after=ID; without either the stream"
        " starts now and its first lines name the id it starts after. Comment lines every 15 s."
        " ?follow=false ends the stream at the events committed when it began (and starts, unless told,"
        " at the oldest kept)",
        "events",
        action="event.stream",
        produces="text/event-stream",
        query=(
            ("type", {"type": "array", "items": TYPE_SCHEMA, "maxItems": 32}),
            ("bucket", BUCKET_SCHEMA),
            ("after", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}),
            ("follow", {"type": "boolean"}),
        ),
    ),
    Route(
        "GET",
        EVENTS + "/settings",
        get_settings,
        "Event and webhook settings (admin): webhook_allow_private lets webhooks target private,"
        " loopback and link-local addresses",
        "events",
        action="event.settings",
        answer=models.EventSettingsOut,
    ),
    Route(
        "PATCH",
        EVENTS + "/settings",
        update_settings,
        "Change the event and webhook settings (admin)",
        "events",
        action="event.configure",
        body=models.EventSettingsBody,
        answer=models.EventSettingsOut,
    ),
)
