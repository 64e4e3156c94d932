"""The composition root: the one place that names the concrete classes of every role.

``open_core`` builds what the gateway, the worker and the tests share — the
metadata store, the HTTP sessions towards the nodes (one for data, one for
health probes; both verify https:// nodes against ``node_ca_file``), the
node registry and the services over them — and tears it down in order. The gateway adds its HTTP
surface on top (``api/app.py``), the worker its job handlers
(``workers/role.py``); neither builds a service of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from cargohold.config import Settings
from cargohold.domain.layout import Layout
from cargohold.erasure.codec import codec_for
from cargohold.imports.http import HttpSource
from cargohold.metadata.db import Database
from cargohold.service.access import AccessService
from cargohold.service.auth import AuthService
from cargohold.service.buckets import BucketService
from cargohold.service.imports import Source
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService
from cargohold.service.quota import QuotaService
from cargohold.service.revocations import Revocations
from cargohold.service.tokens import TokenSigner, signing_key
from cargohold.service.uploads import UploadService
from cargohold.service.zones import ZoneService
from cargohold.storage.node_client import node_ssl_context
from cargohold.workers.limits import LimitsStore, WorkerLimits


@dataclass(slots=True)
class Core:
    settings: Settings
    db: Database
    session: aiohttp.ClientSession
    nodes: NodeRegistry
    buckets: BucketService
    access: AccessService
    auth: AuthService
    quota: QuotaService
    objects: ObjectService
    uploads: UploadService
    limits: LimitsStore
    zones: ZoneService
    #: Where workers fetch import sources from (HTTP; tests may hand in a fake).
    source: Source


@asynccontextmanager
async def open_core(
    settings: Settings, *, monitor_nodes: bool = True, revocations: Revocations | None = None
) -> AsyncIterator[Core]:
    """Open the metadata store and node connections, build the services, close all on exit.

    The default layout's codec is self-tested first, so a broken native
    library stops the process before it can write a share. ``revocations``
    is the counter this process shares with the other workers of its
    gateway (``service/revocations.py``).
    """
    if not settings.cluster_secret:
        raise ValueError("the cluster secret nodes were started with is needed")
    codec_for(Layout.parse(settings.layout))
    db = await Database.open(settings.db_url)
    tls = node_ssl_context(settings.node_ca_file)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=60, ssl=tls)
    session = aiohttp.ClientSession(
        connector=connector,
        read_bufsize=4 << 20,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.node_timeout),
    )
    # Health probes get connections of their own: however many transfers hold the
    # data connections, a probe never queues behind them and a busy node is not called down.
    probe_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, limit_per_host=2, keepalive_timeout=60, ssl=tls),
        timeout=aiohttp.ClientTimeout(total=settings.node_timeout),
    )
    nodes = NodeRegistry(
        db,
        session,
        settings.cluster_secret,
        timeout=settings.node_timeout,
        probe_interval=settings.health_interval,
        probe_session=probe_session,
        probe_timeout=settings.health_timeout,
    )
    cache = settings.auth_cache_seconds
    revocations = revocations or Revocations()
    buckets = BucketService(db, settings.layout, cache_seconds=cache, revocations=revocations)
    access = AccessService(db, buckets, cache_seconds=cache, revocations=revocations)
    signer = TokenSigner(
        signing_key(settings.token_secret, settings.cluster_secret), settings.access_token_ttl
    )
    auth = AuthService(db, cache_seconds=cache, tokens=signer, revocations=revocations)
    quota = QuotaService(db, auth.user)
    zones = ZoneService(db, nodes, home=settings.zone, cache_seconds=cache, geoip_db=settings.geoip_db)
    objects = ObjectService(db, access, quota, nodes, settings, zones)
    core = Core(
        settings=settings,
        db=db,
        session=session,
        nodes=nodes,
        buckets=buckets,
        access=access,
        auth=auth,
        quota=quota,
        objects=objects,
        uploads=UploadService(db, buckets, access, quota, objects, settings),
        limits=LimitsStore(db, WorkerLimits.from_settings(settings)),
        zones=zones,
        source=HttpSource(
            connect_timeout=settings.import_connect_timeout, read_timeout=settings.import_read_timeout
        ),
    )
    try:
        await nodes.probe_all()
        await zones.zones()
        if monitor_nodes:
            nodes.start_monitor()
        yield core
    finally:
        await nodes.stop()
        await objects.drain()
        await session.close()
        await probe_session.close()
        await db.close()
        zones.close()
