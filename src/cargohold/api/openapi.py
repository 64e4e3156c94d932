"""The OpenAPI document and a self-contained docs page, both built from ``ALL_ROUTES``.

aiohttp has no schema generator, so the document is derived from the one
route table: a route cannot exist without being documented.
"""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from cargohold import __version__
from cargohold.api.auth import is_public
from cargohold.api.inputs import INT64_MAX
from cargohold.api.native import Route
from cargohold.api.schemas import PATH_PARAMETERS, Problem

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
#: ``produces`` of an answer that is an object's bytes, typed as they were stored.
ANY_MEDIA = "*/*"
_BYTES: dict[str, Any] = {"type": "string", "format": "binary"}

#: Error statuses any authenticated call may answer: bad input, no or bad credentials, not
#: allowed, not found, too many requests, not enough nodes.
COMMON_ERRORS = (400, 401, 403, 404, 429, 503)
PUBLIC_ERRORS = (400, 404, 429, 503)
_PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
#: tus answers: what each method returns and sends (errors are problem+json there too).
_TUS: dict[str, dict[str, Any]] = {
    "POST": {
        "status": 201,
        "body": "application/offset+octet-stream",
        "errors": (409, 412, 413, 460),
        "description": "Send exactly one of Upload-Length and Upload-Defer-Length: 1, and Upload-Metadata"
        " naming the object: 'bucket <base64>,key <base64>' (or filename), optionally content_type"
        " (or filetype). Anything else is 400 invalid_argument: a rule between headers and inside"
        " one that no schema states.",
        "headers": (
            ("Upload-Length", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}),
            ("Upload-Defer-Length", {"type": "string", "enum": ["1"]}),
            (
                "Upload-Metadata",
                {
                    "type": "string",
                    "description": "Comma-separated 'name base64value' pairs: bucket, key or"
                    " filename, content_type or filetype",
                },
            ),
            (
                "Upload-Concat",
                {"type": "string", "description": "'partial', or 'final;' and the partial uploads' URLs"},
            ),
        ),
    },
    "OPTIONS": {"status": 204, "errors": ()},
    "HEAD": {"status": 200, "errors": (410, 412)},
    "PATCH": {
        "status": 204,
        "body": "application/offset+octet-stream",
        # Its Content-Type is required even for an empty PATCH (tus 1.0.0): 415 without it.
        "body_required": True,
        "errors": (409, 410, 412, 413, 415, 460),
        "description": "Upload-Offset is required: missing, or not a whole number from 0, it is 400"
        " invalid_upload_offset; another offset than the upload's is 409 offset_mismatch.",
        "required": (("Upload-Offset", {"type": "integer", "minimum": 0, "maximum": INT64_MAX}),),
    },
    "DELETE": {"status": 204, "errors": (409, 410, 412)},
}


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """A ``$ref`` to ``model`` in ``components/schemas`` (its nested models land there too)."""
    found = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(found.pop("$defs", {}))
    schemas[model.__name__] = found
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _success_content(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    """The ``content`` of a success: JSON of ``route.answer``, events, or bytes of ``produces``.

    An object's bytes (``*/*``) carry the media type they were stored with, JSON and HTML
    included, so no schema can describe them: that media type gets none, and a JSON answer the
    operation gives besides (a listing) is named in ``route.success`` rather than claiming
    every ``application/json`` answer.
    """
    media_types = [media for media in route.produces.split(",") if media]
    content: dict[str, Any] = {}
    if route.events and route.answer is not None:
        content["text/event-stream"] = {"schema": _event_schema(route.events, route.answer, schemas)}
    elif route.answer is not None:
        answer = _schema(route.answer, schemas)
        if ANY_MEDIA not in media_types:
            content["application/json"] = {"schema": answer}
    for media in media_types:
        content.setdefault(media, {} if media == ANY_MEDIA else {"schema": _BYTES})
    return {"content": content} if content else {}


def _event_schema(name: str, answer: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event (Open API 3.1: the schema describes each event): ``name``, with
    ``answer`` as JSON in its data."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _schema(answer, schemas),
            },
        },
    }


def _operation(route: Route, method: str, path_params: list[Any], schemas: dict[str, Any]) -> dict[str, Any]:
    public = is_public(route.path)
    tus = route.tag == "tus"
    status = _TUS[method]["status"] if tus else route.status
    success: dict[str, Any] = {"description": route.success or "Success"}
    if not tus and method != "HEAD" and status not in (204, 303):
        success.update(_success_content(route, schemas))
    responses: dict[str, Any] = {str(status): success}
    if method in ("GET", "HEAD") and 416 in route.errors:
        responses["206"] = {"description": "Part of the object (Range)"}
        responses["304"] = {"description": "Not modified (If-None-Match)"}
    errors = set(PUBLIC_ERRORS if public else COMMON_ERRORS)
    errors |= set(_TUS[method]["errors"] if tus else route.errors)
    if route.body is not None or route.raw_body or (tus and "body" in _TUS[method]):
        errors.add(413)
    if public or route.tag == "auth":
        errors.add(401)  # a wrong password, a share link's missing password
    if tus and method == "OPTIONS":
        errors = {400, 429, 503}
    for code in sorted(errors):
        problem: dict[str, Any] = {
            "description": HTTPStatus(code).phrase if code != 460 else "Checksum Mismatch"
        }
        problem["content"] = dict(_PROBLEM_CONTENT)
        if route.produces.endswith("text/html") and public:
            problem["content"]["text/html"] = {"schema": {"type": "string"}}
        responses[str(code)] = problem
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": path_params
        + [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in route.query]
        + [
            {"name": name, "in": "header", "required": True, "schema": schema}
            for name, schema in route.headers
        ],
        "responses": responses,
    }
    if tus and method != "OPTIONS":
        operation["parameters"].append(
            {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"const": "1.0.0"}}
        )
        operation["parameters"] += [
            {"name": name, "in": "header", "required": required, "schema": schema}
            for required, key in ((True, "required"), (False, "headers"))
            for name, schema in _TUS[method].get(key, ())
        ]
    if tus and "description" in _TUS[method]:
        operation["description"] = _TUS[method]["description"]
        responses["400"]["description"] += ": " + _TUS[method]["description"]
    if route.body is not None:
        # A body that must name at least one field (a change) is required as much as one with
        # a required field: an absent body is refused alike.
        required = any(field.is_required() for field in route.body.model_fields.values()) or bool(
            route.body.model_json_schema().get("minProperties")
        )
        operation["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": _schema(route.body, schemas)}},
        }
    raw_media = _TUS[method].get("body") if tus else route.raw_body
    if raw_media:
        raw_schema = _schema(route.form, schemas) if route.form else dict(_BYTES)
        if route.body_min_bytes:
            raw_schema["minLength"] = route.body_min_bytes
        operation["requestBody"] = {
            "required": route.form is not None
            or route.body_min_bytes > 0
            or bool(tus and _TUS[method].get("body_required")),
            "content": {raw_media: {"schema": raw_schema}},
        }
    if public or method == "OPTIONS":
        operation["security"] = []
    return operation


_S3_ERROR = {
    "description": "Error (application/xml: <Error> with Code, Message, Resource, RequestId)",
    "content": {"application/xml": {"schema": {"$ref": "#/components/schemas/S3Error"}}},
}
#: What an S3 error is: S3's XML ``<Error>``, which S3 clients read (never problem+json).
S3_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "xml": {"name": "Error"},
    "required": ["Code", "Message", "Resource", "RequestId"],
    "properties": {
        "Code": {"type": "string"},
        "Message": {"type": "string"},
        "Resource": {"type": "string"},
        "RequestId": {"type": "string"},
    },
}


def _s3_operation(route: Route, path_params: list[Any]) -> dict[str, Any]:
    """An S3 catch-all: which operation it is depends on the query and headers (S3's protocol, not
    this document's), so the document says where S3 is served, how it signs and how it fails."""
    return {
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": path_params,
        "responses": {"2XX": {"description": "Success"}, "4XX": _S3_ERROR, "5XX": _S3_ERROR},
        "security": [{"sigv4": []}],
    }


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    from cargohold.api.routes import ALL_ROUTES  # the table lists this module's routes too

    schemas: dict[str, Any] = {}
    _schema(Problem, schemas)
    seen: set[str] = set()
    for route in ALL_ROUTES:
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": PATH_PARAMETERS.get(name, {"type": "string"}),
            }
            for name in _PARAM.findall(route.path)
        ]
        for method in route.documented_methods:
            operation_id = route.handler.__name__ + (f"_{method.lower()}" if route.methods else "")
            while operation_id in seen:  # "/tus" and "/tus/" answer alike
                operation_id += "_alias"
            seen.add(operation_id)
            # OPTIONS answers what the server supports whatever the path names (tus discovery).
            any_params = [{**param, "schema": {"type": "string"}} for param in params]
            documented = any_params if method == "OPTIONS" else params
            if route.tag == "s3":
                operation = {"operationId": operation_id, **_s3_operation(route, params)}
            else:
                operation = {"operationId": operation_id, **_operation(route, method, documented, schemas)}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cargohold",
            "version": __version__,
            "description": "Native API of the cargohold gateway, and where its S3-compatible API is"
            " served. Every native error is application/problem+json with a stable `code`, tus routes"
            " included: tus clients act on the status and the Upload-* headers and show the body as"
            " text, so one error format serves them and everyone else. S3 requests are signed with"
            " SigV4 and fail as S3 does, with an XML <Error>.",
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API key <key_id>.<secret>",
                },
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "S3 requests: AWS Signature Version 4 with an S3 access key"
                    " (or a presigned URL's X-Amz-* query parameters)",
                },
            },
            "schemas": {"S3Error": S3_ERROR_SCHEMA, **schemas},
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(openapi_document()), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    rows = []
    for path, operations in openapi_document()["paths"].items():
        for method, op in operations.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td></tr>"
            )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>cargohold API</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
td{{padding:.25rem .75rem;border-bottom:1px solid #ddd}}</style></head><body>
<h1>cargohold API {__version__}</h1>
<p>Every call needs <code>Authorization: Bearer &lt;key&gt;</code>. Errors are
<code>application/problem+json</code> with a stable <code>code</code>.
Machine-readable document: <a href="/openapi.json">/openapi.json</a>.</p>
<table>{"".join(rows)}</table></body></html>"""
    return web.Response(text=page, content_type="text/html")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", openapi_json, "This OpenAPI document (public)", "system"),
    Route(
        "GET", "/docs", docs_page, "The API described as a web page (public)", "system", produces="text/html"
    ),
)
