"""Every route of the gateway, in one table: the router and the OpenAPI document both read it."""

from __future__ import annotations

from cargohold.api import (
    accounts,
    events,
    history,
    imports,
    namespaces,
    native,
    nodes,
    observe,
    openapi,
    placement,
    share_links,
    tus,
    uploads,
    webhooks,
    webui,
    zones,
)
from cargohold.s3 import routing as s3_routing

ALL_ROUTES = (
    *native.ROUTES,
    *placement.ROUTES,
    *nodes.ROUTES,
    *zones.ROUTES,
    *namespaces.ROUTES,
    *uploads.ROUTES,
    *imports.ROUTES,
    *accounts.ROUTES,
    *share_links.ROUTES,
    *history.ROUTES,
    *events.ROUTES,
    *webhooks.ROUTES,
    *tus.ROUTES,
    *webui.ROUTES,
    *openapi.ROUTES,
    *observe.ROUTES,
    # Last: the S3 catch-alls answer every path the routes above do not claim.
    *s3_routing.ROUTES,
)
