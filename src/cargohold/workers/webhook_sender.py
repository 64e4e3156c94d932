"""Sending one webhook delivery: sign, POST, time it, and never dial a private address by accident.

One pooled ``aiohttp.ClientSession`` serves every subscription (keep-alive
connections per target, a timeout per attempt, redirects not followed: a 3xx
is a failed attempt, not a detour to wherever it points). Signing is the
``standardwebhooks`` package's, the reference implementation of the
convention receivers verify with.

The private-address rule is enforced where the address is chosen: a
resolver that refuses names resolving to non-public addresses, and a check
of literal addresses (which aiohttp never resolves). A name that resolved
to a public address when the subscription was made and to a private one
now (DNS rebinding) is refused at connection time. Connections already
pooled were checked when they were opened; when an admin withdraws the
permission for private targets, the pool is closed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from standardwebhooks.webhooks import Webhook as Signer

from cargohold import __version__
from cargohold.domain.webhooks import forbidden_address, target

#: Bytes of a receiver's answer kept for the attempt's record.
ANSWER_PEEK = 256


class TargetForbidden(OSError):
    """The target resolved to a private, loopback or otherwise non-public address."""


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None


class _GuardedResolver(AbstractResolver):
    def __init__(self, allow_private: Callable[[], Awaitable[bool]]) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not await self._allow_private():
            refused = sorted({r["host"] for r in found if forbidden_address(r["host"])})
            if refused:
                raise TargetForbidden(f"{host} resolves to {', '.join(refused)}: not a public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Sender:
    """Signs and POSTs deliveries over one pooled session; ``close`` when done."""

    def __init__(
        self,
        allow_private: Callable[[], Awaitable[bool]],
        *,
        timeout: float = 10.0,
        connections: int = 256,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._allowed_when_opened: bool | None = None

    async def _open(self) -> aiohttp.ClientSession:
        allowed = await self._allow_private()
        if self._session is not None and self._allowed_when_opened and not allowed:
            await self._session.close()  # pooled connections may lead to private addresses
            self._session = None
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections,
                limit_per_host=32,
                use_dns_cache=False,
                resolver=_GuardedResolver(self._allow_private),
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=min(5.0, self._timeout)),
                headers={"User-Agent": f"cargohold-webhooks/{__version__}"},
            )
        self._allowed_when_opened = allowed
        return self._session

    async def send(self, url: str, signer: Signer, message_id: str, body: str) -> SendResult:
        """One attempt: ``ok`` for a 2xx answer; anything else (or no answer) is a failure with a reason."""
        started = time.perf_counter()
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signer.sign(message_id, datetime.fromtimestamp(now, UTC), body),
        }
        try:
            session = await self._open()
            host, _ = target(url)
            if _is_literal(host) and forbidden_address(host) and not await self._allow_private():
                raise TargetForbidden(f"{host} is not a public address")
            async with session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as answer:
                peek = await answer.content.read(ANSWER_PEEK)
                status = answer.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            return SendResult(False, None, _ms(started), f"{type(exc).__name__}: {reason}")
        if 200 <= status < 300:
            return SendResult(True, status, _ms(started), None)
        text = peek.decode(errors="replace").strip()
        return SendResult(False, status, _ms(started), f"HTTP {status}" + (f": {text[:200]}" if text else ""))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _is_literal(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
    except OSError:
        return False
    return True


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
