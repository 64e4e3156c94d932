"""Every route the gateway serves is documented (the router and OpenAPI share one table)."""

from __future__ import annotations

import re

from cargohold.api.app import build_gateway
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


def test_key_routes_are_typed_and_s3_routes_say_how_they_authenticate() -> None:
    paths = openapi_document()["paths"]
    create = paths["/api/v1/keys"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["kind"]["enum"] == ["api", "s3"]
    answer = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert {"token", "secret_access_key", "access_key_id"} <= set(answer["properties"])
    listed = paths["/api/v1/keys"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["properties"]["keys"]["items"]["required"][0] == "kind"
    for path in ("/", "/{bucket}", "/{bucket}/{key}"):
        for operation in paths[path].values():
            assert operation["security"] == [{"sigv4": []}]
            assert "application/xml" in operation["responses"]["4XX"]["content"]
