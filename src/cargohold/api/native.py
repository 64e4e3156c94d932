"""Native HTTP API (``/api/v1``): buckets and objects.

Handlers only translate HTTP to service calls and back; validation and
decisions live in the services. Bodies stream in and out: nothing here reads a
whole object into memory. ``ROUTES`` is the single table the router and the
OpenAPI document are both built from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES, Services
from cargohold.api.inputs import content_type, cursor_query, int_query, model_body, text_query
from cargohold.api.object_responses import stream_object_response
from cargohold.domain.model import Bucket, ObjectRecord
from cargohold.domain.names import MAX_KEY_BYTES, validate_bucket
from cargohold.service.catalog import VersionListing
from cargohold.service.checksums import ExpectedDigests

API = "/api/v1"
#: The version a write made or a read served; on a delete, the version removed or the marker added.
VERSION_HEADER = "x-version-id"
DELETE_MARKER_HEADER = "x-delete-marker"
#: The most entries one listing page holds (``limit`` is 1 to this, as the services enforce).
MAX_PAGE = 1000


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data), content_type="application/json", headers=headers
    )


def bucket_json(bucket: Bucket, owner: str | None) -> dict[str, Any]:
    return {
        "name": bucket.name,
        "layout": bucket.layout,
        "owner": owner,
        "created_at": bucket.created_at.isoformat(),
        "versioning": bucket.versioning,
    }


def object_json(bucket: str, record: ObjectRecord) -> dict[str, Any]:
    return {"bucket": bucket, **entry_json(record)}


def entry_json(record: ObjectRecord) -> dict[str, Any]:
    """An object as a listing shows it: an object answer without its bucket."""
    return {
        "key": record.key,
        "size": record.size,
        "etag": record.etag,
        "content_type": record.content_type,
        "created_at": record.created_at.isoformat(),
        "md5": record.md5,
        "sha256": record.sha256,
        "version_id": record.version_id,
    }


def version_json(record: ObjectRecord) -> dict[str, Any]:
    """One entry of a version listing (a delete marker has no content: size 0, empty etag)."""
    return {
        "key": record.key,
        "version_id": record.version_id,
        "size": record.size,
        "etag": record.etag,
        "created_at": record.created_at.isoformat(),
        "is_latest": record.is_latest,
        "delete_marker": record.delete_marker,
    }


# -- buckets ------------------------------------------------------------------


async def create_bucket(request: web.Request) -> web.Response:
    validate_bucket(request.match_info["bucket"])
    layout = (await model_body(request, schemas.CreateBucket)).layout
    bucket = await _services(request).namespaces.create(
        principal(request), request.match_info["bucket"], layout
    )
    return json_response(bucket_json(bucket, principal(request).name), status=201)


async def list_buckets(request: web.Request) -> web.Response:
    namespaces = _services(request).namespaces
    buckets = await namespaces.visible(principal(request))
    owners = await namespaces.owners(buckets)
    return json_response({"buckets": [bucket_json(b, owners.get(b.id)) for b in buckets]})


async def delete_bucket(request: web.Request) -> web.Response:
    await _services(request).namespaces.delete(principal(request), request.match_info["bucket"])
    return web.Response(status=204)


async def get_versioning(request: web.Request) -> web.Response:
    bucket = await _services(request).namespaces.get(principal(request), request.match_info["bucket"])
    return json_response({"bucket": bucket.name, "status": bucket.versioning})


async def set_versioning(request: web.Request) -> web.Response:
    status = (await model_body(request, schemas.SetVersioning)).status
    bucket = await _services(request).namespaces.set_versioning(
        principal(request), request.match_info["bucket"], status
    )
    note(request, detail={"versioning": bucket.versioning})
    return json_response({"bucket": bucket.name, "status": bucket.versioning})


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
        content_type=content_type(request.headers.get("Content-Type")),
        expected=expected,
    )
    note(request, version_id=record.version_id, size=record.size)
    return web.Response(
        status=201,
        text=json.dumps(object_json(bucket, record)),
        content_type="application/json",
        headers={"ETag": f'"{record.etag}"', VERSION_HEADER: record.version_id},
    )


async def _read_version(request: web.Request) -> ObjectRecord:
    """The version a GET or HEAD asks for (``?version_id=`` or the latest), noted in the history."""
    record = await _services(request).objects.head(
        principal(request),
        request.match_info["bucket"],
        request.match_info["key"],
        request.query.get("version_id"),
    )
    note(request, version_id=record.version_id, size=record.size)
    return record


async def head_object(request: web.Request) -> web.StreamResponse:
    """HEAD, and GET without ``?versions``: the response streams only when the method is GET."""
    record = await _read_version(request)
    return await stream_object_response(
        request, _services(request).objects, record, {VERSION_HEADER: record.version_id}
    )


async def get_object(request: web.Request) -> web.StreamResponse:
    """The object, or with ``?versions`` its versions; ``limit`` and ``cursor`` are judged either way."""
    page = _page(request)
    if "versions" in request.query:
        return await _list_key_versions(request, page)
    return await head_object(request)


async def delete_object(request: web.Request) -> web.Response:
    """A plain DELETE follows the bucket's rules; ``?version_id=`` removes exactly that version."""
    deleted = await _services(request).objects.delete(
        principal(request),
        request.match_info["bucket"],
        request.match_info["key"],
        request.query.get("version_id"),
    )
    note(
        request,
        version_id=deleted.version_id,
        size=deleted.size,
        detail={"delete_marker": deleted.delete_marker},
    )
    headers = {VERSION_HEADER: deleted.version_id}
    if deleted.delete_marker:
        headers[DELETE_MARKER_HEADER] = "true"
    return web.Response(status=204, headers=headers)


async def restore_object(request: web.Request) -> web.Response:
    version_id = (await model_body(request, schemas.RestoreObject)).version_id
    bucket = request.match_info["bucket"]
    record = await _services(request).objects.restore(
        principal(request), bucket, request.match_info["key"], version_id
    )
    note(request, version_id=record.version_id, size=record.size)
    return json_response(object_json(bucket, record), headers={VERSION_HEADER: record.version_id})


async def rename_object(request: web.Request) -> web.Response:
    """Move the latest version to ``to_key`` (in ``to_bucket``, default this bucket): metadata only."""
    body = await model_body(request, schemas.RenameObject)
    bucket, key = request.match_info["bucket"], request.match_info["key"]
    to_key, to_bucket, overwrite = body.to_key, body.to_bucket or bucket, body.overwrite
    renamed = await _services(request).objects.rename(
        principal(request), bucket, key, to_key, to_bucket=to_bucket, overwrite=overwrite
    )
    record = renamed.record
    note(
        request,
        version_id=record.version_id,
        size=record.size,
        detail={"to_bucket": to_bucket, "to_key": to_key, "overwrite": overwrite},
    )
    answer = object_json(to_bucket, record)
    answer["renamed_from"] = {"bucket": bucket, "key": key, "delete_marker": renamed.source_marker}
    return json_response(answer, headers={VERSION_HEADER: record.version_id})


def _versions_page(listing: VersionListing) -> dict[str, Any]:
    return {
        "versions": [version_json(v) for v in listing.versions],
        "next_cursor": listing.next_cursor,
        "truncated": listing.next_cursor is not None,
    }


@dataclass(frozen=True, slots=True)
class _Page:
    """A listing's query, read whole before the call's mode is chosen: a parameter the document
    gives an operation is judged whether or not this call (``?versions`` or not) uses it."""

    limit: int
    cursor: str | None
    prefix: str = ""
    delimiter: str = ""


def _page(request: web.Request, *, of_keys: bool = False) -> _Page:
    """``limit`` and ``cursor``; with ``of_keys`` (a bucket's listing) ``prefix`` and ``delimiter`` too."""
    return _Page(
        limit=int_query(request, "limit", MAX_PAGE, minimum=1, maximum=MAX_PAGE),
        cursor=cursor_query(request),
        prefix=text_query(request, "prefix", MAX_KEY_BYTES) if of_keys else "",
        delimiter=text_query(request, "delimiter", 1) if of_keys else "",
    )


async def _list_key_versions(request: web.Request, page: _Page) -> web.Response:
    """``GET {object}?versions``: the key's versions, latest first, then newest first."""
    bucket, key = request.match_info["bucket"], request.match_info["key"]
    listing = await _services(request).objects.versions(
        principal(request), bucket, key=key, limit=page.limit, cursor=page.cursor
    )
    note(request, detail={"versions": True})
    return json_response({"bucket": bucket, "key": key, **_versions_page(listing)})


async def list_objects(request: web.Request) -> web.Response:
    """A page of objects, or with ``?versions`` of versions of every key under ``prefix``, keys ascending."""
    page = _page(request, of_keys=True)
    bucket = request.match_info["bucket"]
    if "versions" in request.query:
        versions = await _services(request).objects.versions(
            principal(request), bucket, prefix=page.prefix, limit=page.limit, cursor=page.cursor
        )
        note(request, detail={"versions": True})
        return json_response({"bucket": bucket, **_versions_page(versions)})
    listing = await _services(request).objects.list_page(
        principal(request), bucket, page.prefix, page.delimiter, page.limit, page.cursor
    )
    return json_response(
        {
            "objects": [entry_json(o) for o in listing.objects],
            "common_prefixes": listing.common_prefixes,
            "next_cursor": listing.next_cursor,
            "truncated": listing.next_cursor is not None,
        }
    )


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
    #: The JSON request body's model (validated by the handler, shown in the document).
    body: type[BaseModel] | None = None
    #: The media type of a request body streamed raw (an object's bytes, a form).
    raw_body: str = ""
    #: The fewest bytes a raw body holds (more than 0: the body is required).
    body_min_bytes: int = 0
    #: The fields of a raw body that is a form (then the body is required).
    form: type[BaseModel] | None = None
    #: The JSON answer's model, the success status and the media type of a non-JSON answer
    #: (``*/*``: an object's bytes, typed as they were stored).
    answer: type[BaseModel] | None = None
    status: int = 200
    produces: str = "application/json"
    #: What a success holds, when that is more than "Success" (an answer of several kinds).
    success: str = ""
    #: A ``text/event-stream`` answer: the name of its events, whose data is ``answer`` as JSON.
    events: str = ""
    #: Error statuses this operation answers besides those every authenticated call may.
    errors: tuple[int, ...] = ()
    #: Query parameters: name -> JSON schema (with an optional "description").
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: Required request headers: name -> JSON schema.
    headers: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: For a route that decides the action per request (the S3 catch-all): request -> action.
    action_of: Callable[[web.Request], str] | None = None

    def action_for(self, method: str) -> str:
        """The history action of a call to this route with ``method``."""
        if "=" not in self.action:
            return self.action
        actions = dict(pair.split("=", 1) for pair in self.action.split(","))
        return actions.get(method, "")

    @property
    def documented_methods(self) -> tuple[str, ...]:
        return self.methods or (self.method,)


#: The rest of the path, newlines included (keys may hold any character but controls, which
#: ``validate_key`` refuses with its own error rather than the router's 404).
TAIL = "(?s:.+)"
BUCKET = API + "/buckets/{bucket}"
OBJECT = BUCKET + "/objects/{key:" + TAIL + "}"
#: Actions on an object name the action before the key, so no key can be mistaken for one:
#: ``POST .../rename/{key}`` renames ``key``; ``PUT .../objects/x/rename`` stores "x/rename".
RENAME = BUCKET + "/rename/{key:" + TAIL + "}"
RESTORE = BUCKET + "/restore/{key:" + TAIL + "}"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", healthz, "Liveness of the gateway (public)", "system", answer=schemas.Status),
    Route(
        "GET",
        API + "/buckets",
        list_buckets,
        "List buckets",
        "buckets",
        action="bucket.list",
        answer=schemas.BucketList,
    ),
    Route(
        "PUT",
        API + "/buckets/{bucket}",
        create_bucket,
        "Create a bucket",
        "buckets",
        action="bucket.create",
        body=schemas.CreateBucket,
        answer=schemas.BucketOut,
        status=201,
        errors=(409,),
    ),
    Route(
        "DELETE",
        API + "/buckets/{bucket}",
        delete_bucket,
        "Delete an empty bucket",
        "buckets",
        action="bucket.delete",
        status=204,
        errors=(409,),
    ),
    Route(
        "GET",
        API + "/buckets/{bucket}/versioning",
        get_versioning,
        "Bucket versioning status: off, enabled or suspended",
        "buckets",
        action="bucket.versioning_status",
        answer=schemas.Versioning,
    ),
    Route(
        "PUT",
        API + "/buckets/{bucket}/versioning",
        set_versioning,
        "Turn bucket versioning on or off: {status: enabled|suspended}",
        "buckets",
        action="bucket.versioning",
        body=schemas.SetVersioning,
        answer=schemas.Versioning,
        errors=(409,),
    ),
    Route(
        "GET",
        API + "/buckets/{bucket}/objects",
        list_objects,
        "List objects (?versions: every version of every key, delete markers included)",
        "objects",
        action="object.list",
        answer=schemas.ObjectListing,
        query=(
            ("prefix", {"type": "string", "maxLength": MAX_KEY_BYTES}),
            ("delimiter", {"type": "string", "maxLength": 1}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
            ("cursor", schemas.CURSOR_SCHEMA),
            (
                "versions",
                {"type": "string", "description": "present: list versions", "allowEmptyValue": True},
            ),
        ),
    ),
    Route(
        "PUT",
        OBJECT,
        put_object,
        "Upload an object (streamed raw body)",
        "objects",
        action="object.create",
        raw_body="application/octet-stream",
        answer=schemas.ObjectOut,
        status=201,
        errors=(409, 411, 413, 507),
    ),
    Route(
        "GET",
        OBJECT,
        get_object,
        "Download an object or a byte range (?version_id=V: that version; ?versions: list them)",
        "objects",
        action="object.read",
        answer=schemas.ObjectListing,
        produces="*/*",
        success="The object's bytes, typed as they were stored (any media type); with ?versions,"
        " a page of its versions as JSON (ObjectListing)",
        errors=(416,),
        query=(
            ("version_id", schemas.VERSION_ID_SCHEMA),
            (
                "versions",
                {"type": "string", "description": "present: list versions", "allowEmptyValue": True},
            ),
            ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
            ("cursor", schemas.CURSOR_SCHEMA),
        ),
    ),
    Route(
        "HEAD",
        OBJECT,
        head_object,
        "Object metadata (?version_id=V: of that version)",
        "objects",
        action="object.stat",
        produces="",
        errors=(416,),
        query=(("version_id", schemas.VERSION_ID_SCHEMA),),
    ),
    Route(
        "DELETE",
        OBJECT,
        delete_object,
        "Delete an object (a delete marker when versioning is on), or ?version_id=V exactly",
        "objects",
        action="object.delete",
        status=204,
        errors=(409,),
        query=(("version_id", schemas.VERSION_ID_SCHEMA),),
    ),
    Route(
        "POST",
        RENAME,
        rename_object,
        "Rename (move) an object, within a bucket or to another of the same layout; metadata only",
        "objects",
        action="object.rename",
        body=schemas.RenameObject,
        answer=schemas.RenamedObject,
        errors=(409,),
    ),
    Route(
        "POST",
        RESTORE,
        restore_object,
        "Make an earlier version the latest again: {version_id}",
        "objects",
        action="object.restore",
        body=schemas.RestoreObject,
        answer=schemas.ObjectOut,
        errors=(409,),
    ),
)
