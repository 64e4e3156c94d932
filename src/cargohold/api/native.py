"""Native HTTP API (``/api/v1``): buckets, objects, nodes.

Handlers only translate HTTP to service calls and back; validation and
decisions live in the services. Bodies stream in and out: nothing here reads a
whole object into memory. ``ROUTES`` is the single table the router and the
OpenAPI document are both built from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from cargohold.api.auth import principal, require_admin
from cargohold.api.context import SERVICES, Services
from cargohold.domain.model import Bucket, NodeRecord, ObjectRecord
from cargohold.domain.names import validate_bucket
from cargohold.domain.ranges import ByteRange, parse_range
from cargohold.errors import InvalidArgument, NoSuchNode
from cargohold.service.checksums import ExpectedDigests

API = "/api/v1"


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data), content_type="application/json", headers=headers
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    if request.content_length is not None and request.content_length > 64 * 1024:
        raise InvalidArgument("JSON body too large")
    try:
        data = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("body must be a JSON object")
    return data


def bucket_json(bucket: Bucket) -> dict[str, Any]:
    return {
        "name": bucket.name,
        "layout": bucket.layout,
        "created_at": bucket.created_at.isoformat(),
    }


def object_json(bucket: str, record: ObjectRecord) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": record.key,
        "size": record.size,
        "etag": record.etag,
        "content_type": record.content_type,
        "created_at": record.created_at.isoformat(),
        "md5": record.md5,
        "sha256": record.sha256,
    }


def node_json(node: NodeRecord) -> dict[str, Any]:
    return {
        "id": node.id,
        "url": node.url,
        "zone": node.zone,
        "enabled": node.enabled,
        "active": node.active,
        "healthy": node.healthy,
        "capacity": node.capacity,
        "used": node.used,
        "free": node.free,
        "fill": round(node.used / node.capacity, 6) if node.capacity else 0.0,
        "shares": node.shares,
        "last_seen": node.last_seen.isoformat() if node.last_seen else None,
    }


# -- buckets ------------------------------------------------------------------


async def create_bucket(request: web.Request) -> web.Response:
    validate_bucket(request.match_info["bucket"])
    body = await json_body(request)
    layout = body.get("layout")
    if layout is not None and not isinstance(layout, str):
        raise InvalidArgument("layout must be a string such as 'ec:5+2'")
    bucket = await _services(request).namespaces.create(
        principal(request), request.match_info["bucket"], layout
    )
    return json_response(bucket_json(bucket), status=201)


async def list_buckets(request: web.Request) -> web.Response:
    buckets = await _services(request).namespaces.visible(principal(request))
    return json_response({"buckets": [bucket_json(b) for b in buckets]})


async def delete_bucket(request: web.Request) -> web.Response:
    await _services(request).namespaces.delete(principal(request), request.match_info["bucket"])
    return web.Response(status=204)


# -- objects ------------------------------------------------------------------


async def put_object(request: web.Request) -> web.Response:
    bucket, key = request.match_info["bucket"], request.match_info["key"]
    expected = ExpectedDigests.from_headers(
        request.headers.get("Content-MD5"), request.headers.get("x-checksum-sha256")
    )
    record = await _services(request).objects.put(
        principal(request),
        bucket,
        key,
        request.content.iter_any(),
        content_length=request.content_length,
        content_type=request.headers.get("Content-Type", "application/octet-stream"),
        expected=expected,
    )
    return web.Response(
        status=201,
        text=json.dumps(object_json(bucket, record)),
        content_type="application/json",
        headers={"ETag": f'"{record.etag}"'},
    )


def _object_headers(record: ObjectRecord) -> dict[str, str]:
    return {
        "ETag": f'"{record.etag}"',
        "Last-Modified": format_datetime(record.created_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Type": record.content_type,
    }


def _not_modified(request: web.Request, record: ObjectRecord) -> bool:
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in tags or record.etag in tags


async def head_object(request: web.Request) -> web.StreamResponse:
    record = await _services(request).objects.head(
        principal(request), request.match_info["bucket"], request.match_info["key"]
    )
    headers = _object_headers(record)
    if _not_modified(request, record):
        return web.Response(status=304, headers=headers)
    byte_range = parse_range(request.headers.get("Range"), record.size)
    status, length = 200, record.size
    if byte_range is not None:
        status, length = 206, byte_range.length
        headers["Content-Range"] = byte_range.content_range(record.size)
    headers["Content-Length"] = str(length)
    return web.Response(status=status, headers=headers)


async def get_object(request: web.Request) -> web.StreamResponse:
    objects = _services(request).objects
    record = await objects.head(principal(request), request.match_info["bucket"], request.match_info["key"])
    headers = _object_headers(record)
    if _not_modified(request, record):
        return web.Response(status=304, headers=headers)
    byte_range = parse_range(request.headers.get("Range"), record.size)
    if record.inline_data is not None:
        return _inline_response(record.inline_data, byte_range, headers)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = record.size
    if byte_range is not None:
        response.set_status(206)
        response.headers["Content-Range"] = byte_range.content_range(record.size)
        response.content_length = byte_range.length
    chunks = objects.stream(record, byte_range)
    # Decide errors before the first byte: fetch the first block, then answer.
    first = await anext(chunks, None)
    await response.prepare(request)
    if first is not None:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response


def _inline_response(data: bytes, byte_range: ByteRange | None, headers: dict[str, str]) -> web.Response:
    """Small objects kept in the metadata store: one plain response, no streaming machinery."""
    if byte_range is None:
        return web.Response(body=data, headers=headers)
    headers["Content-Range"] = byte_range.content_range(len(data))
    return web.Response(status=206, body=data[byte_range.start : byte_range.end + 1], headers=headers)


async def delete_object(request: web.Request) -> web.Response:
    await _services(request).objects.delete(
        principal(request), request.match_info["bucket"], request.match_info["key"]
    )
    return web.Response(status=204)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be an integer") from exc


async def list_objects(request: web.Request) -> web.Response:
    bucket = request.match_info["bucket"]
    listing = await _services(request).objects.list_page(
        principal(request),
        bucket,
        prefix=request.query.get("prefix", ""),
        delimiter=request.query.get("delimiter", ""),
        limit=_int_param(request, "limit", 1000),
        cursor=request.query.get("cursor") or None,
    )
    return json_response(
        {
            "objects": [
                {k: v for k, v in object_json(bucket, o).items() if k not in ("bucket",)}
                for o in listing.objects
            ],
            "common_prefixes": listing.common_prefixes,
            "next_cursor": listing.next_cursor,
            "truncated": listing.next_cursor is not None,
        }
    )


# -- nodes --------------------------------------------------------------------


async def list_nodes(request: web.Request) -> web.Response:
    return json_response({"nodes": [node_json(n) for n in _services(request).nodes.nodes()]})


async def add_node(request: web.Request) -> web.Response:
    require_admin(request)
    body = await json_body(request)
    url, zone = body.get("url"), body.get("zone", "default")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgument("url must be an http(s) URL of a running node")
    if not isinstance(zone, str) or not zone:
        raise InvalidArgument("zone must be a non-empty string")
    node = await _services(request).nodes.add(url, zone)
    return json_response(node_json(node), status=201)


async def update_node(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        node_id = int(request.match_info["node_id"])
    except ValueError as exc:
        raise NoSuchNode("node ids are integers") from exc
    body = await json_body(request)
    changes: dict[str, Any] = {}
    for field, kind in (("enabled", bool), ("active", bool), ("zone", str)):
        if field in body:
            if not isinstance(body[field], kind):
                raise InvalidArgument(f"{field} must be a {kind.__name__}")
            changes[field] = body[field]
    if not changes:
        raise InvalidArgument("nothing to change: send enabled, active and/or zone")
    node = await _services(request).nodes.update(node_id, **changes)
    return json_response(node_json(node))


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Any
    summary: str
    tag: str
    #: For a "*" route (one handler dispatching on the method): the methods it answers.
    methods: tuple[str, ...] = ()
    #: What the history records a call as ("object.read", ...); "" records nothing.
    #: A "*" route names one action per method: "PATCH=upload.append,DELETE=upload.abort".
    action: str = ""

    def action_for(self, method: str) -> str:
        """The history action of a call to this route with ``method``."""
        if "=" not in self.action:
            return self.action
        actions = dict(pair.split("=", 1) for pair in self.action.split(","))
        return actions.get(method, "")

    @property
    def documented_methods(self) -> tuple[str, ...]:
        return self.methods or (self.method,)


OBJECT = API + "/buckets/{bucket}/objects/{key:.+}"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", healthz, "Liveness of the gateway (public)", "system"),
    Route("GET", API + "/buckets", list_buckets, "List buckets", "buckets", action="bucket.list"),
    Route(
        "PUT", API + "/buckets/{bucket}", create_bucket, "Create a bucket", "buckets", action="bucket.create"
    ),
    Route(
        "DELETE",
        API + "/buckets/{bucket}",
        delete_bucket,
        "Delete an empty bucket",
        "buckets",
        action="bucket.delete",
    ),
    Route(
        "GET",
        API + "/buckets/{bucket}/objects",
        list_objects,
        "List objects",
        "objects",
        action="object.list",
    ),
    Route(
        "PUT", OBJECT, put_object, "Upload an object (streamed raw body)", "objects", action="object.create"
    ),
    Route("GET", OBJECT, get_object, "Download an object or a byte range", "objects", action="object.read"),
    Route("HEAD", OBJECT, head_object, "Object metadata", "objects", action="object.stat"),
    Route("DELETE", OBJECT, delete_object, "Delete an object", "objects", action="object.delete"),
    Route("GET", API + "/nodes", list_nodes, "List storage nodes", "nodes", action="node.list"),
    Route("POST", API + "/nodes", add_node, "Register a running storage node", "nodes", action="node.add"),
    Route(
        "PATCH",
        API + "/nodes/{node_id}",
        update_node,
        "Switch a node on/off, active/inactive, or change its zone",
        "nodes",
        action="node.update",
    ),
)
