"""Entry point of ``cargohold worker``: the core, the healing role, and signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from cargohold.bootstrap import open_core
from cargohold.concurrency import tune_malloc
from cargohold.config import Settings
from cargohold.metrics_http import SCRAPE, ScrapeAccess, metrics
from cargohold.problems import problem_middleware
from cargohold.workers.role import HealingWorker

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, once: bool, kinds: tuple[str, ...]) -> None:
    """Run until SIGINT/SIGTERM, or with ``once`` until the chosen work is done."""
    tune_malloc()  # repair decodes and encodes every block: keep its buffers off fresh mmaps
    async with open_core(settings, monitor_nodes=not once) as core:
        role = HealingWorker(core)
        if once:
            ran = await role.run_once(kinds)
            print(f"worker: {ran} jobs run ({', '.join(kinds)})", flush=True)
            return
        loop = asyncio.get_running_loop()
        metrics = await _serve_metrics(settings) if settings.metrics_port is not None else None
        work = asyncio.create_task(role.run_forever())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, work.cancel)
        print("worker running", flush=True)
        log.info("worker running: %s", ", ".join(kinds))
        with contextlib.suppress(asyncio.CancelledError):
            await work
        if metrics is not None:
            await metrics.cleanup()
        print("worker stopping", file=sys.stderr, flush=True)


async def _serve_metrics(settings: Settings) -> web.AppRunner:
    """A tiny server for ``/metrics`` alone: a worker has no other HTTP surface."""
    app = web.Application(middlewares=[problem_middleware])
    app[SCRAPE] = ScrapeAccess.from_settings(settings.metrics_token, settings.metrics_allow)
    app.router.add_get("/metrics", metrics, allow_head=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.metrics_port)
    await site.start()
    print(f"worker metrics on {site.name}", flush=True)
    return runner
