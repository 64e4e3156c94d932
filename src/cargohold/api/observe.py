"""``GET /metrics`` on the gateway: Prometheus text, for the scrape token or an allowed network."""

from __future__ import annotations

from cargohold.api.native import Route
from cargohold.metrics_http import metrics

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics: Bearer scrape token (metrics_token) or an address in metrics_allow;"
        " refused when neither is configured",
        "operations",
        produces="text/plain",
        errors=(401, 403),
    ),
)
