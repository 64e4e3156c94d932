"""Composition root of the gateway: builds every service and wires it to aiohttp."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from cargohold.api import tus
from cargohold.api.audit import error_code_middleware
from cargohold.api.auth import AUTH, auth_middleware
from cargohold.api.context import SERVICES, Services
from cargohold.api.history import history_middleware
from cargohold.api.inputs import path_middleware
from cargohold.api.routes import ALL_ROUTES
from cargohold.concurrency import tune_malloc
from cargohold.config import Settings
from cargohold.domain.layout import Layout
from cargohold.erasure.codec import codec_for
from cargohold.metadata.db import Database
from cargohold.problems import problem_middleware
from cargohold.service.access import AccessService
from cargohold.service.accounts import AccountService, Bootstrap
from cargohold.service.auth import AuthService
from cargohold.service.buckets import BucketService
from cargohold.service.history import HistoryService
from cargohold.service.namespaces import NamespaceService
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService
from cargohold.service.quota import QuotaService
from cargohold.service.sessions import SessionService
from cargohold.service.share_links import ShareLinkService, cookie_key
from cargohold.service.throttle import Throttle
from cargohold.service.tokens import TokenSigner, signing_key
from cargohold.service.uploads import UploadService
from cargohold.workers.base import Periodic
from cargohold.workers.gc import GarbageCollector

log = logging.getLogger(__name__)

BOOTSTRAP = web.AppKey("bootstrap", Bootstrap)


def build_gateway(settings: Settings) -> web.Application:
    """The gateway application; services start and stop with the app's lifecycle."""
    if not settings.cluster_secret:
        raise ValueError("the gateway needs the cluster secret nodes were started with")
    tune_malloc()
    codec_for(Layout.parse(settings.layout))  # self-test the default codec before serving
    # History outermost: it records the status clients got, 401s and problem bodies included.
    app = web.Application(
        middlewares=[
            history_middleware(ALL_ROUTES),
            problem_middleware,
            tus.tus_middleware,
            error_code_middleware,
            path_middleware,
            auth_middleware,
        ]
    )
    for route in ALL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(lambda app: _lifecycle(app, settings))
    return app


async def _lifecycle(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    db = await Database.open(settings.db_url)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=60)
    session = aiohttp.ClientSession(
        connector=connector,
        read_bufsize=4 << 20,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.node_timeout),
    )
    nodes = NodeRegistry(
        db,
        session,
        settings.cluster_secret or "",
        timeout=settings.node_timeout,
        probe_interval=settings.health_interval,
    )
    cache = settings.auth_cache_seconds
    buckets = BucketService(db, settings.layout, cache_seconds=cache)
    access = AccessService(db, buckets, cache_seconds=cache)
    signer = TokenSigner(
        signing_key(settings.token_secret, settings.cluster_secret), settings.access_token_ttl
    )
    auth = AuthService(db, cache_seconds=cache, tokens=signer)
    quota = QuotaService(db, auth.user)
    objects = ObjectService(db, access, quota, nodes, settings)
    accounts = AccountService(db, auth)
    sessions = SessionService(
        db, auth, Throttle(db, limit=settings.login_max_failures), settings.refresh_token_ttl
    )
    upload_service = UploadService(db, buckets, access, quota, objects, settings)
    history = HistoryService(db)
    workers = [
        Periodic("gc", GarbageCollector(db, nodes).run_once, 5.0, objects.gc_wakeup),
        Periodic("upload-expiry", upload_service.sweep, settings.sweep_interval),
    ]
    try:
        history.start()
        app[BOOTSTRAP] = await accounts.bootstrap(settings.admin_password, settings.admin_key)
        await nodes.probe_all()
        nodes.start_monitor()
        for worker in workers:
            worker.start()
        app[SERVICES] = Services(
            buckets=buckets,
            access=access,
            namespaces=NamespaceService(db, buckets, access),
            quota=quota,
            auth=auth,
            accounts=accounts,
            objects=objects,
            nodes=nodes,
            uploads=upload_service,
            sessions=sessions,
            history=history,
            share_links=ShareLinkService(
                db,
                access,
                objects,
                auth,
                Throttle(db),
                cookie_key(settings.token_secret or settings.cluster_secret or ""),
            ),
        )
        app[AUTH] = auth
        yield
    finally:
        await history.stop()  # stores what is queued while the database is open
        for worker in workers:
            await worker.stop()
        await nodes.stop()
        await objects.drain()
        await session.close()
        await db.close()
