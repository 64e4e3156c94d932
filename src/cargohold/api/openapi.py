"""The OpenAPI document and a self-contained docs page, both built from ``ALL_ROUTES``.

aiohttp has no schema generator, so the document is derived from the one
route table: a route cannot exist without being documented.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web

from cargohold import __version__
from cargohold.api.auth import is_public
from cargohold.api.native import Route

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

_PROBLEM = {
    "description": "Error (application/problem+json with a stable `code`)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


_S3_ERROR = {
    "description": "Error (application/xml: <Error> with Code, Message, Resource, RequestId)",
    "content": {"application/xml": {"schema": {"$ref": "#/components/schemas/S3Error"}}},
}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    from cargohold.api.routes import ALL_ROUTES  # the table lists this module's routes too

    seen: set[str] = set()
    for route in ALL_ROUTES:
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        for method in route.documented_methods:
            operation_id = route.handler.__name__ + (f"_{method.lower()}" if route.methods else "")
            while operation_id in seen:  # "/tus" and "/tus/" answer alike
                operation_id += "_alias"
            seen.add(operation_id)
            operation: dict[str, Any] = {
                "summary": route.summary,
                "tags": [route.tag],
                "operationId": operation_id,
                "parameters": params,
                "responses": {"2XX": {"description": "Success"}, "4XX": _PROBLEM, "5XX": _PROBLEM},
            }
            if route.response_schema is not None:
                operation["responses"] = {
                    str(route.success): {
                        "description": "Success",
                        "content": {"application/json": {"schema": route.response_schema}},
                    },
                    "4XX": _PROBLEM,
                    "5XX": _PROBLEM,
                }
            if route.request_schema is not None:
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": route.request_schema}},
                }
            if route.tag == "s3":
                operation["security"] = [{"sigv4": []}]
                operation["responses"] = {
                    "2XX": {"description": "Success"},
                    "4XX": _S3_ERROR,
                    "5XX": _S3_ERROR,
                }
            elif is_public(route.path) or method == "OPTIONS":
                operation["security"] = []
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cargohold",
            "version": __version__,
            "description": "Native API of the cargohold gateway, and where its S3-compatible API is served.",
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
            "schemas": {
                "S3Error": {
                    "type": "object",
                    "xml": {"name": "Error"},
                    "required": ["Code", "Message", "Resource", "RequestId"],
                    "properties": {
                        "Code": {"type": "string"},
                        "Message": {"type": "string"},
                        "Resource": {"type": "string"},
                        "RequestId": {"type": "string"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                    },
                },
            },
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
    Route("GET", "/docs", docs_page, "The API described as a web page (public)", "system"),
)
