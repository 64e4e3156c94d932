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
