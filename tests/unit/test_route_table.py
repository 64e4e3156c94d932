"""Every route the gateway serves is documented (the router and OpenAPI share one table)."""

from __future__ import annotations

import re
from typing import Any

from cargohold.api.app import build_gateway
from cargohold.api.inputs import CURSOR_PATTERN, MAX_CURSOR
from cargohold.api.openapi import openapi_document
from cargohold.config import Settings


def test_every_served_route_is_in_the_openapi_document() -> None:
    app = build_gateway(Settings(cluster_secret="unit-test"))
    documented = {
        (method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops
    }
    served = set()
    for route in app.router.routes():
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", route.resource.canonical if route.resource else "")
        if route.method == "*":
            assert any(p == path for _, p in documented), path
            continue
        served.add((route.method, path))
    assert served <= documented, served - documented
    ids = [op["operationId"] for ops in openapi_document()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``$ref`` to ``components/schemas`` followed."""
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _shapes(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object shapes a schema allows: itself, or each member of its ``oneOf``."""
    schema = _resolved(document, schema)
    return [_resolved(document, member) for member in schema.get("oneOf", [schema])]


def test_key_routes_are_typed_and_s3_routes_say_how_they_authenticate() -> None:
    document = openapi_document()
    paths = document["paths"]
    create = paths["/api/v1/keys"]["post"]
    body = _resolved(document, create["requestBody"]["content"]["application/json"]["schema"])
    assert body["properties"]["kind"]["enum"] == ["api", "s3"]
    answer = _shapes(document, create["responses"]["201"]["content"]["application/json"]["schema"])
    by_kind = {shape["properties"]["kind"]["const"]: set(shape["required"]) for shape in answer}
    assert "token" in by_kind["api"] and "access_key_id" not in by_kind["api"]
    assert {"secret_access_key", "access_key_id", "key_id"} <= by_kind["s3"]
    listed = paths["/api/v1/keys"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    items = _resolved(document, listed)["properties"]["keys"]["items"]
    assert [shape["required"][0] for shape in _shapes(document, items)] == ["kind", "kind"]
    for path in ("/", "/{bucket}", "/{bucket}/{key}"):
        for operation in paths[path].values():
            assert operation["security"] == [{"sigv4": []}]
            assert "application/xml" in operation["responses"]["4XX"]["content"]
    assert document["components"]["schemas"]["S3Error"]["xml"] == {"name": "Error"}


def test_answers_are_documented_as_they_are_served() -> None:
    """Object bytes carry the media type they were stored with (any: no schema can describe them);
    upload events are server-sent events whose data is the upload's state."""
    document = openapi_document()
    paths = document["paths"]
    download = paths["/api/v1/buckets/{bucket}/objects/{key}"]["get"]["responses"]["200"]["content"]
    assert download == {"*/*": {}}
    for path in ("/s/{token}", "/s/{token}/{rest}"):
        shared = paths[path]["get"]["responses"]["200"]["content"]
        assert shared["*/*"] == {} and "application/json" not in shared
    listing = paths["/s/{token}"]["head"]["parameters"]
    assert [p["name"] for p in listing if p["in"] == "query"] == ["limit", "cursor", "download"]
    assert not [p for p in paths["/s/{token}/{rest}"]["get"]["parameters"] if p["in"] == "query"]
    events = paths["/api/v1/uploads/{upload_id}/events"]["get"]["responses"]["200"]["content"]
    event = events["text/event-stream"]["schema"]
    assert event["properties"]["event"] == {"const": "upload"}
    data = event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    state = _resolved(document, data["contentSchema"])
    assert "parts" not in state["properties"] and "bytes_received" in state["required"]


def test_request_rules_the_handlers_hold_to_are_documented() -> None:
    paths = openapi_document()["paths"]
    patch = paths["/tus/{upload_id}"]["patch"]
    offset = next(p for p in patch["parameters"] if p["name"] == "Upload-Offset")
    assert offset["required"] is True and offset["schema"]["minimum"] == 0
    assert "invalid_upload_offset" in patch["responses"]["400"]["description"]
    chunk = paths["/api/v1/uploads/{upload_id}"]["put"]["requestBody"]
    assert chunk["required"] is True
    assert chunk["content"]["application/octet-stream"]["schema"]["minLength"] == 1
    for path in ("/api/v1/buckets/{bucket}/objects", "/api/v1/buckets/{bucket}/objects/{key}", "/s/{token}"):
        cursor = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "cursor")
        assert cursor["schema"]["pattern"] == CURSOR_PATTERN and cursor["schema"]["maxLength"] == MAX_CURSOR
