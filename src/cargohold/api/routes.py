"""Every route of the gateway, in one table: the router and the OpenAPI document both read it."""

from __future__ import annotations

from cargohold.api import native, openapi, tus, uploads

ALL_ROUTES = (*native.ROUTES, *uploads.ROUTES, *tus.ROUTES, *openapi.ROUTES)
