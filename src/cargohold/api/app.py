"""Composition root of the gateway: builds every service and wires it to aiohttp."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from cargohold.api import tus, zones
from cargohold.api.audit import error_code_middleware
from cargohold.api.auth import AUTH, auth_middleware
from cargohold.api.context import SERVICES, Services
from cargohold.api.history import history_middleware
from cargohold.api.inputs import path_middleware
from cargohold.api.limits import ADMISSION, Admission, Budgets, limits_middleware
from cargohold.api.routes import ALL_ROUTES
from cargohold.api.webhooks import PING_SENDER
from cargohold.api.websession import WEB_SESSIONS, CookieSessions, renew_cookie
from cargohold.bootstrap import Core, open_core
from cargohold.concurrency import tune_malloc
from cargohold.config import Settings
from cargohold.domain.jobs import DELETE_PART
from cargohold.imports.http import resolve
from cargohold.metrics_http import SCRAPE, ScrapeAccess, metrics_middleware
from cargohold.problems import problem_middleware
from cargohold.s3.auth import s3_auth_middleware
from cargohold.s3.routing import s3_middleware, s3_request_id
from cargohold.s3.surface import S3_DOMAIN
from cargohold.service.accounts import FIRST_ADMIN, AccountService, Bootstrap
from cargohold.service.events import EventFeed
from cargohold.service.gateways import GatewayDirectory, registered_url
from cargohold.service.healing import HealingService
from cargohold.service.history import HistoryService
from cargohold.service.imports import ImportService
from cargohold.service.namespaces import NamespaceService
from cargohold.service.revocations import Revocations
from cargohold.service.s3keys import S3KeyService, bootstrap_admin_key
from cargohold.service.sessions import SessionService
from cargohold.service.share_links import ShareLinkService, cookie_key
from cargohold.service.throttle import Throttle
from cargohold.service.tokens import signing_key
from cargohold.service.webhooks import EventSettings, WebhookService
from cargohold.service.zones import trusted_networks
from cargohold.serving import request_middleware, serve_requests
from cargohold.workers.base import Periodic
from cargohold.workers.gc import GarbageCollector
from cargohold.workers.jobs import JobRunner
from cargohold.workers.webhook_sender import Sender

log = logging.getLogger(__name__)

BOOTSTRAP = web.AppKey("bootstrap", Bootstrap)

MAX_REQUEST_LINE = 64 * 1024
#: Names the gateway worker process that answered (``gateway --workers N``): 1..N.
WORKER_HEADER = "X-Gateway-Worker"


def build_gateway(
    settings: Settings, *, processes: int = 1, worker: int | None = None, shared_fd: int | None = None
) -> web.Application:
    """The gateway application; services start and stop with the app's lifecycle.

    ``processes`` gateway processes share one port (``gateway --workers``):
    each admits its share of the request and upload budgets
    (``api/limits.py``); ``worker`` is this one's number, sent back in
    ``X-Gateway-Worker`` so operators (and tests) can tell them apart;
    ``shared_fd`` is the revocation counter they share (``service/revocations.py``).
    """
    if not settings.cluster_secret:
        raise ValueError("the gateway needs the cluster secret nodes were started with")
    tune_malloc()
    # Request ids and fault logging wrap everything; history next: it records the status
    # clients got, 401s and problem bodies included. tus and S3 render their own errors just
    # inside the problem+json renderer. Limits need the principal: after both authentications.
    app = web.Application(
        middlewares=[
            request_middleware,
            metrics_middleware("gateway"),
            history_middleware(ALL_ROUTES),
            problem_middleware,
            tus.tus_middleware,
            s3_middleware,
            error_code_middleware,
            path_middleware,
            auth_middleware,
            s3_auth_middleware,
            limits_middleware,
            zones.zone_middleware,
        ],
        # A documented request line may be long: a 1024-byte key and 1024-character prefix and
        # cursor, each character up to 12 bytes once percent-encoded. aiohttp's 8190-byte default
        # refused such URLs with a text/plain 400 before any of the middlewares above ran.
        handler_args={"max_line_size": MAX_REQUEST_LINE},
    )
    serve_requests(app)
    app.on_response_prepare.append(s3_request_id)
    app.on_response_prepare.append(renew_cookie)
    app[WEB_SESSIONS] = CookieSessions.build(
        signing_key(settings.token_secret, settings.cluster_secret), settings.ui_idle_timeout
    )
    if worker is not None:
        app.on_response_prepare.append(functools.partial(_name_worker, str(worker)))
    app[S3_DOMAIN] = (settings.s3_domain or "").strip(".").lower()
    app[ADMISSION] = Admission(Budgets.from_settings(settings, processes))
    app[zones.TRUSTED] = trusted_networks(settings.trusted_proxies)
    app[zones.REDIRECT] = settings.redirect_to_nearest
    app[SCRAPE] = ScrapeAccess.from_settings(settings.metrics_token, settings.metrics_allow)
    for route in ALL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(lambda app: _lifecycle(app, settings, Revocations(shared_fd), processes))
    app.on_shutdown.append(_close_streams)
    return app


async def _name_worker(number: str, _request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers[WORKER_HEADER] = number


async def first_start(core: Core, settings: Settings) -> Bootstrap:
    """Make sure an admin can sign in (API key and S3 key); what to show once on a fresh store.

    Every gateway runs it at start; the parent of several gateway workers
    runs it first, so the workers do not race to create the first admin.
    """
    accounts = AccountService(core.db, core.auth)
    s3keys = S3KeyService(core.db, core.auth, settings.cluster_secret or "", settings.auth_cache_seconds)
    first = await accounts.bootstrap(settings.admin_password, settings.admin_key)
    return replace(first, s3_key=await bootstrap_admin_key(s3keys, core.db, FIRST_ADMIN))


async def _lifecycle(
    app: web.Application, settings: Settings, revocations: Revocations, processes: int
) -> AsyncIterator[None]:
    async with open_core(settings, revocations=revocations) as core:
        db = core.db
        accounts = AccountService(db, core.auth)
        sessions = SessionService(
            db, core.auth, Throttle(db, limit=settings.login_max_failures), settings.refresh_token_ttl
        )
        history = HistoryService(db)
        feed = EventFeed(db, poll_interval=settings.event_poll_interval)
        webhooks = WebhookService(db, core.access, settings.cluster_secret or "", EventSettings(db))
        imports = ImportService(db, core.access, resolve, webhooks.settings.allow_private)
        app[PING_SENDER] = Sender(webhooks.settings.allow_private, timeout=settings.webhook_timeout)
        # Workers collect garbage too; the gateway also does it at once after a
        # delete, so freed space shows without waiting for a worker's poll.
        gc = JobRunner(db, {DELETE_PART: GarbageCollector(db, core.nodes).handle}, lambda: 4)
        workers = [
            Periodic("gc", functools.partial(gc.run_due, [DELETE_PART]), 5.0, core.objects.gc_wakeup),
            Periodic("upload-expiry", core.uploads.sweep, settings.sweep_interval),
        ]
        # One of several workers on one URL leaves removing its row to the parent (service/gateways.py).
        directory = GatewayDirectory(
            db, settings.zone, settings.gateway_heartbeat, forget_on_stop=processes == 1
        )
        try:
            history.start()
            feed.start()
            s3keys = S3KeyService(db, core.auth, settings.cluster_secret or "", settings.auth_cache_seconds)
            app[BOOTSTRAP] = await first_start(core, settings)
            for worker in workers:
                worker.start()
            app[SERVICES] = Services(
                buckets=core.buckets,
                access=core.access,
                namespaces=NamespaceService(db, core.buckets, core.access, core.nodes),
                quota=core.quota,
                auth=core.auth,
                accounts=accounts,
                objects=core.objects,
                nodes=core.nodes,
                uploads=core.uploads,
                sessions=sessions,
                history=history,
                share_links=ShareLinkService(
                    db,
                    core.access,
                    core.objects,
                    core.auth,
                    Throttle(db),
                    cookie_key(settings.token_secret or settings.cluster_secret or ""),
                ),
                healing=HealingService(db, core.nodes, core.limits, settings),
                s3keys=s3keys,
                imports=imports,
                events=feed,
                webhooks=webhooks,
                zones=core.zones,
                gateways=directory,
            )
            app[AUTH] = core.auth
            yield
        finally:
            await directory.stop()
            await history.stop()  # stores what is queued while the database is open
            await feed.stop()
            await app[PING_SENDER].close()
            for worker in workers:
                await worker.stop()
            await gc.stop()


async def _close_streams(app: web.Application) -> None:
    """Shutdown: end the event streams, which would otherwise hold it up until their timeout."""
    services = app.get(SERVICES)
    if services is not None:
        services.events.close_readers()


async def announce_gateway(app: web.Application, settings: Settings, listening: str) -> None:
    """Register this gateway for redirects under ``registered_url`` (``service/gateways.py``).

    Every worker of ``gateway --workers N`` announces the same URL (they share the port).
    """
    url = registered_url(settings.public_url, listening)
    if url is None:
        log.info("not registered for redirects: set public_url (listening on %s)", listening)
        return
    await app[SERVICES].gateways.announce(url)
