"""Fair shares of a gateway: how much one user or one address may have in progress.

Node connections, gateway memory and event-loop time are shared by every
user; without limits one client with a few hundred stalled uploads takes
them all. Each request is admitted, or refused at once, against three
budgets: its principal's (the signed-in user, across keys and tokens), its
client address's, and the whole gateway's. A budget counts requests in
progress and upload bytes in flight.

An upload's bytes in flight are what the gateway may hold for it at once:
its announced length, at most one *upload window* (the blocks a transfer
buffers, ``blocks_in_flight`` blocks for every share, plus the block being
filled and the socket buffer), and a full window for a body of unknown
length. A 1 KiB JSON body counts 1 KiB; a 100 GB upload counts one window,
so large honest uploads are limited by number, not by size. With the
defaults (64 requests and 256 MiB per user, 256 and 512 MiB per address,
4,096 and 2 GiB per gateway, a 10 MiB window) the gateway's upload memory
stays around 2 GiB whatever clients do.

Going over a user's or an address's budget is ``429 slow_down``; over the
gateway's is ``503 gateway_busy``; both with ``Retry-After``, decided before
any body byte is read (aiohttp then discards what the client still sends
for at most ``lingering_time``, 10 s, and closes the connection).

A gateway of N worker processes on one port (``gateway --workers N``) keeps
the budgets of the whole gateway: each process admits 1/N of every one.
Counting in the metadata store instead would cost two writes per request,
more than a small request costs in all. The price: the kernel spreads
connections over the processes at random, so one user's requests can meet a
process's share before the gateway's whole budget is used (with 64 per user
and 2 processes, a user is sure of 32 at once and usually gets close to 64),
never more than the whole budget.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

from cargohold.concurrency import run_io, trim_malloc
from cargohold.config import Settings
from cargohold.domain.layout import Layout
from cargohold.errors import GatewayBusy, SlowDown
from cargohold.problems import Handler

#: Seconds a refused client is asked to wait: requests here last seconds, not minutes.
RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class Budget:
    requests: int
    upload_bytes: int


@dataclass(frozen=True, slots=True)
class Budgets:
    principal: Budget
    address: Budget
    gateway: Budget
    upload_window: int

    @classmethod
    def from_settings(cls, settings: Settings, processes: int = 1) -> Budgets:
        """The budgets of one of ``processes`` gateway processes that share a port."""
        layout = Layout.parse(settings.layout)
        # Frames queued for every share, the block being filled, and the socket buffers.
        window = settings.blocks_in_flight * layout.block_size * layout.width // layout.k
        window += 2 * layout.block_size

        def share(requests: int, upload_bytes: int) -> Budget:
            return Budget(max(1, requests // processes), max(1, upload_bytes // processes))

        return cls(
            principal=share(settings.max_requests_per_principal, settings.max_upload_bytes_per_principal),
            address=share(settings.max_requests_per_address, settings.max_upload_bytes_per_address),
            gateway=share(settings.max_requests, settings.max_upload_bytes),
            upload_window=window,
        )


class _Ledger:
    """What one kind of holder (principals, addresses, the gateway) has in progress."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.requests: Counter[object] = Counter()
        self.upload_bytes: Counter[object] = Counter()

    def fits(self, holder: object, upload: int) -> bool:
        return (
            self.requests[holder] < self.budget.requests
            and self.upload_bytes[holder] + upload <= self.budget.upload_bytes
        )

    def take(self, holder: object, upload: int) -> None:
        self.requests[holder] += 1
        self.upload_bytes[holder] += upload

    def give_back(self, holder: object, upload: int) -> None:
        self.requests[holder] -= 1
        self.upload_bytes[holder] -= upload
        if not self.requests[holder]:
            del self.requests[holder]
            self.upload_bytes.pop(holder, None)


#: Upload bytes that must have been in flight at once before the gateway hands memory back when idle.
TRIM_AFTER = 64 * 1024 * 1024
#: Seconds between the looks for memory to hand back once the last upload has ended.
TRIM_DELAYS = (1.0, 4.0, 10.0)


class Admission:
    """The three ledgers, checked and updated together (one event loop: no lock needed).

    When uploads have held at least ``TRIM_AFTER`` bytes and none is left in
    flight, freed memory goes back to the kernel (``trim_malloc``), so the
    gateway's RSS returns near idle after a burst.
    """

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self._principals = _Ledger(budgets.principal)
        self._addresses = _Ledger(budgets.address)
        self._gateway = _Ledger(budgets.gateway)
        self._peak = 0
        self._trimming: asyncio.Future[None] | None = None

    def upload_cost(self, request: web.BaseRequest) -> int:
        if not request.body_exists:
            return 0
        length = request.content_length
        window = self.budgets.upload_window
        return window if length is None else min(length, window)

    def admit(self, principal: int | None, address: str, upload: int) -> None:
        """Take a place in every budget, or raise without taking any."""
        if not self._gateway.fits(None, upload):
            raise GatewayBusy(
                "the gateway is at its limit of requests or upload bytes in progress; retry shortly",
                retry_after=RETRY_AFTER,
            )
        if principal is not None and not self._principals.fits(principal, upload):
            budget = self.budgets.principal
            raise SlowDown(
                f"this user already has the most requests ({budget.requests}) or upload bytes"
                f" ({budget.upload_bytes}) in progress that one user may; retry when some finish",
                retry_after=RETRY_AFTER,
            )
        if not self._addresses.fits(address, upload):
            budget = self.budgets.address
            raise SlowDown(
                f"this address already has the most requests ({budget.requests}) or upload bytes"
                f" ({budget.upload_bytes}) in progress that one address may; retry when some finish",
                retry_after=RETRY_AFTER,
            )
        self._gateway.take(None, upload)
        self._peak = max(self._peak, self._gateway.upload_bytes[None])
        if principal is not None:
            self._principals.take(principal, upload)
        self._addresses.take(address, upload)

    def release(self, principal: int | None, address: str, upload: int) -> None:
        self._gateway.give_back(None, upload)
        if principal is not None:
            self._principals.give_back(principal, upload)
        self._addresses.give_back(address, upload)
        if upload and not self._gateway.upload_bytes[None] and self._peak >= TRIM_AFTER:
            self._peak = 0
            if self._trimming is None or self._trimming.done():
                # Later, not now: the request's last buffers (node streams closing,
                # shares being deleted) are freed just after its handler returns.
                self._trimming = asyncio.ensure_future(_trim_soon())


async def _trim_soon() -> None:
    # A failed upload's exception and traceback hold its frames, and the frames its
    # block buffers: a reference cycle that only a full collection frees. Connections
    # and node streams close over the next seconds, so look again a few times.
    for delay in TRIM_DELAYS:
        await asyncio.sleep(delay)
        gc.collect()
        await run_io(trim_malloc)


ADMISSION = web.AppKey("admission", Admission)


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit the request against its budgets for as long as its handler runs.

    Sits after authentication, which names the principal; public routes
    (sign-in, share links) count against their address and the gateway.
    """
    admission = request.app[ADMISSION]
    who = request.get("principal")
    principal = who.user_id if who is not None else None
    address = request.remote or "unknown"
    upload = admission.upload_cost(request)
    admission.admit(principal, address, upload)
    try:
        return await handler(request)
    finally:
        admission.release(principal, address, upload)
