"""The OpenAPI document and a self-contained docs page, both built from ``ROUTES``.

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
from cargohold.api.native import ROUTES as NATIVE_ROUTES
from cargohold.api.uploads import ROUTES as UPLOAD_ROUTES

ROUTES = (*NATIVE_ROUTES, *UPLOAD_ROUTES)

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

_PROBLEM = {
    "description": "Error (application/problem+json with a stable `code`)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": route.handler.__name__,
            "parameters": params,
            "responses": {"2XX": {"description": "Success"}, "4XX": _PROBLEM, "5XX": _PROBLEM},
        }
        if route.path == "/healthz":
            operation["security"] = []
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cargohold",
            "version": __version__,
            "description": "Native API of the cargohold gateway.",
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API key <key_id>.<secret>",
                }
            },
            "schemas": {
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
                }
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
