"""Every Prometheus metric of every role, defined in this one module.

One module so the names, labels and (for a gateway run as several processes)
the multiprocess mode of each gauge are decided in one place; roles only
``inc``/``observe``/``set``. Label values are bounded: routes are the route
table's templates, never raw paths; nodes are ids; zones are zone names.

Rendering honours ``PROMETHEUS_MULTIPROC_DIR`` when set, so a multi-process
gateway answers for all its processes. Who may scrape is decided by
:func:`scrape_allowed`: a bearer token or an address in the allow-list, and
nobody when neither is configured.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from cargohold.domain.zones import IPNetwork

REQUESTS = Counter(
    "cargohold_requests",
    "HTTP requests answered, by route template, method and status",
    ["role", "route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "cargohold_request_seconds",
    "Seconds from a request's start to its last byte sent",
    ["role", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BYTES_IN = Counter("cargohold_bytes_in", "Request body bytes received", ["role"])
BYTES_OUT = Counter("cargohold_bytes_out", "Response body bytes sent", ["role"])
ZONE_READ_BYTES = Counter(
    "cargohold_zone_read_bytes",
    "Share bytes reads pulled, by the client's zone and the zone of the node that sent them",
    ["client_zone", "share_zone"],
)
NODE_FILL = Gauge(
    "cargohold_node_fill_ratio",
    "Used over capacity of a node, as last probed",
    ["node", "zone"],
    multiprocess_mode="mostrecent",
)
NODE_SHARES = Gauge(
    "cargohold_node_shares",
    "Shares a node holds, as last probed",
    ["node", "zone"],
    multiprocess_mode="mostrecent",
)
NODE_UP = Gauge(
    "cargohold_node_up",
    "1 when a node answered its last health probe",
    ["node", "zone"],
    multiprocess_mode="mostrecent",
)
NODE_ERRORS = Counter("cargohold_node_errors", "Failed share transfers, by node", ["node"])
JOBS = Gauge(
    "cargohold_jobs", "Background jobs by kind and state", ["kind", "state"], multiprocess_mode="mostrecent"
)
PARTS_DEGRADED = Gauge(
    "cargohold_parts_degraded",
    "Parts missing at least one share (last health pass)",
    multiprocess_mode="mostrecent",
)
REPAIR_WAITING_BYTES = Gauge(
    "cargohold_repair_waiting_bytes",
    "Share bytes repair still has to rebuild (last health pass)",
    multiprocess_mode="mostrecent",
)


def render() -> tuple[bytes, str]:
    """The text exposition of every metric of this process (or all processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


def scrape_allowed(
    authorization: str | None, address: str | None, token: str | None, allow: Sequence[IPNetwork]
) -> bool:
    """A scrape carries ``Bearer <token>`` or comes from an allowed network; never open by default."""
    if token and authorization is not None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    if allow and address:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in allow)
    return False
