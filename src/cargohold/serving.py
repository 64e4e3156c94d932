"""Running an aiohttp application until SIGINT/SIGTERM, announcing the bound address.

Port 0 is allowed: the real port is printed in the "listening on" line that
test harnesses and ``up`` wait for (they poll for it instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    role: str,
    on_ready: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    print(f"{role} listening on {url}", flush=True)
    try:
        if on_ready is not None:
            await on_ready(url)
        await stop.wait()
    finally:
        print(f"{role} stopping", file=sys.stderr, flush=True)
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
