"""Background imports over the native API: ask for one, follow it, list them, cancel one.

Handlers translate HTTP to :class:`ImportService` calls; the work happens in
a worker (``workers/imports.py``), so asking answers ``202`` at once.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from cargohold.api import import_schemas as schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import content_type, int_query, model_body, parse_int
from cargohold.api.native import API, Route, json_response
from cargohold.api.schemas import BUCKET_SCHEMA, USER_NAME_PATTERN
from cargohold.domain.imports import STATUSES, Import, NoSuchImport
from cargohold.domain.names import validate_bucket
from cargohold.errors import InvalidArgument
from cargohold.service.imports import MAX_LIST, ImportService

IMPORTS = API + "/imports"
IMPORT = IMPORTS + "/{import_id}"
_ID = re.compile(r"[0-9a-f]{32}")
_CURSOR_MAX = 10**18 - 1


def _imports(request: web.Request) -> ImportService:
    return request.app[SERVICES].imports


def _stamp(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def import_json(record: Import) -> dict[str, Any]:
    failed = record.error_code is not None
    return {
        "id": record.id,
        "source": record.source,
        "bucket": record.bucket,
        "key": record.key,
        "owner": record.owner,
        "status": record.status,
        "size": record.total_size,
        "bytes_done": record.bytes_done,
        "uploaded_percentage": record.percentage,
        "rate": record.rate,
        "eta_seconds": record.eta_seconds,
        "content_type": record.content_type,
        "expected_sha256": record.expected_sha256,
        "expected_md5": record.expected_md5,
        "attempts": record.attempts,
        "resumes": record.resumes,
        "restarts": record.restarts,
        "error": {"code": record.error_code, "message": record.error_message} if failed else None,
        "version_id": record.version_id,
        "created_at": _stamp(record.created_at),
        "updated_at": _stamp(record.updated_at),
        "started_at": _stamp(record.started_at),
        "finished_at": _stamp(record.finished_at),
    }


def _import_id(request: web.Request) -> str:
    raw = request.match_info["import_id"]
    if not _ID.fullmatch(raw):
        raise NoSuchImport(f"no import {raw[:40]!r}: import ids are 32 hex digits")
    return raw


async def create_import(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CreateImport)
    record = await _imports(request).create(
        principal(request),
        body.source,
        body.bucket,
        body.key,
        content_type=content_type(body.content_type) if body.content_type else None,
        expected_md5=body.expected_md5,
        expected_sha256=body.expected_sha256,
    )
    note(request, bucket=record.bucket, key=record.key, detail={"import": record.id})
    return json_response(import_json(record), status=202, headers={"Location": f"{IMPORTS}/{record.id}"})


def _statuses(request: web.Request) -> list[str]:
    values = [v for raw in request.query.getall("status", []) for v in raw.split(",") if v]
    for value in values:
        if value not in STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}", field="status")
    return values


async def list_imports(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 100, minimum=1, maximum=MAX_LIST)
    cursor = request.query.get("cursor")
    user = request.query.get("user")
    bucket = request.query.get("bucket")
    if bucket is not None:
        validate_bucket(bucket)
    if user is not None and not re.fullmatch(USER_NAME_PATTERN, user):
        raise InvalidArgument("user must be a user name", field="user")
    found = await _imports(request).list(
        principal(request),
        statuses=_statuses(request),
        bucket=bucket,
        user=user,
        before=parse_int(cursor, "cursor", minimum=1, maximum=_CURSOR_MAX) if cursor is not None else None,
        limit=limit,
    )
    next_cursor = str(found[-1].seq) if len(found) == limit else None
    return json_response({"imports": [import_json(r) for r in found], "next_cursor": next_cursor})


async def get_import(request: web.Request) -> web.Response:
    record = await _imports(request).get(principal(request), _import_id(request))
    return json_response(import_json(record))


async def cancel_import(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    record = await services.imports.cancel(principal(request), _import_id(request))
    services.objects.kick_gc()  # free the stored parts' shares now, not at the next gc round
    note(request, bucket=record.bucket, key=record.key, detail={"import": record.id})
    return json_response(import_json(record))


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        IMPORTS,
        create_import,
        "Fetch an http(s) URL into an object in the background (202: PENDING at once)",
        "imports",
        action="import.create",
        body=schemas.CreateImport,
        answer=schemas.ImportOut,
        status=202,
        errors=(422,),
    ),
    Route(
        "GET",
        IMPORTS,
        list_imports,
        "List your imports, newest first (admins: everyone's; ?status=&bucket=&user=)",
        "imports",
        action="import.list",
        answer=schemas.ImportList,
        query=(
            ("status", schemas.STATUS_SCHEMA),
            ("bucket", BUCKET_SCHEMA),
            ("user", {"type": "string", "pattern": USER_NAME_PATTERN, "description": "Admins only"}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST}),
            ("cursor", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
        ),
    ),
    Route(
        "GET",
        IMPORT,
        get_import,
        "Status, bytes, percentage, rate and time left of an import",
        "imports",
        action="import.read",
        answer=schemas.ImportOut,
    ),
    Route(
        "DELETE",
        IMPORT,
        cancel_import,
        "Cancel an import (DELETED); its stored parts are freed",
        "imports",
        action="import.cancel",
        answer=schemas.ImportOut,
        errors=(409,),
    ),
)
