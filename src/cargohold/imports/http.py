"""The HTTP source of imports (aiohttp), and host-name resolution for the gateway's check.

Every connection is judged where it is made: names go through a resolver
that refuses non-public addresses (so a name that resolves to a public
address when the import is asked for cannot be re-pointed at an internal
one later: DNS rebinding), literal addresses are judged before the request,
and redirects are followed by hand so each hop is judged the same way.
No proxy from the environment is used: it would connect on our behalf.

Timeouts: ``connect_timeout`` for the TCP (and TLS) connection,
``read_timeout`` for any silence in the headers or the body.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from cargohold.domain.imports import (
    Answer,
    SourceBrokeOff,
    SourceHttpError,
    SourceMisbehaved,
    SourceNotAllowed,
    SourceNotFound,
    SourceTimeout,
    SourceUnreachable,
    SourceUnresolvable,
    parse_source,
    refused_addresses,
)
from cargohold.service.imports import ALLOW_PRIVATE, SourceReply

MAX_REDIRECTS = 5
RESOLVE_TIMEOUT = 10.0
READ_BUFFER = 4 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _not_allowed(host: str, refused: list[str]) -> SourceNotAllowed:
    return SourceNotAllowed(
        f"{host} is {', '.join(refused)}: imports reach only public addresses while the cluster"
        f" setting {ALLOW_PRIVATE} is off"
    )


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing names with a non-public address unless allowed."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        refused = refused_addresses([r["host"] for r in found])
        if refused and not self._allow_private:
            raise _not_allowed(host, refused)
        return found

    async def close(self) -> None:
        await self._inner.close()


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the gateway's check when an import is asked for)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise SourceUnresolvable(f"{host} does not resolve: {exc}", field="source") from None
    return sorted({str(info[4][0]) for info in infos})


class HttpSource:
    """``Source`` over HTTP/1.1: one connection per ``open``, closed with it."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )

    @asynccontextmanager
    async def open(
        self, url: str, *, offset: int, validator: str | None, allow_private: bool
    ) -> AsyncIterator[SourceReply]:
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if validator is not None:
                headers["If-Range"] = validator
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private), use_dns_cache=False, limit=1, force_close=True
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            read_bufsize=READ_BUFFER,
            trust_env=False,
        ) as session:
            response = await _request(session, url, headers, allow_private)
            try:
                answer = _answer(response)
                yield SourceReply(answer, response.headers.get("Content-Type"), _body(response))
            finally:
                response.close()


async def _request(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], allow_private: bool
) -> aiohttp.ClientResponse:
    """GET ``url``, following redirects by hand: every hop's address is judged."""
    for _ in range(MAX_REDIRECTS + 1):
        target = parse_source(url)
        if target.literal and not allow_private:
            refused = refused_addresses([target.host])
            if refused:
                raise _not_allowed(target.host, refused)
        try:
            response = await session.get(url, headers=headers, allow_redirects=False)
        except TimeoutError:
            raise SourceTimeout(f"{target.host} did not answer in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SourceUnreachable(f"{target.host}: {exc or type(exc).__name__}") from None
        location = response.headers.get("Location")
        if response.status not in _REDIRECTS or not location:
            return response
        response.close()
        url = urljoin(url, location)
    raise SourceMisbehaved(f"more than {MAX_REDIRECTS} redirects")


def _answer(response: aiohttp.ClientResponse) -> Answer:
    status = response.status
    if status in (404, 410):
        raise SourceNotFound(f"the source answered HTTP {status}")
    if status not in (200, 206):
        raise SourceHttpError(status)
    etag = response.headers.get("ETag")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
    if status == 200:
        return Answer(200, 0, response.content_length, validator)
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None:
        raise SourceMisbehaved("a partial answer without a valid Content-Range")
    total = None if match.group(3) == "*" else int(match.group(3))
    return Answer(206, int(match.group(1)), total, validator)


async def _body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except TimeoutError:
        raise SourceTimeout("the source stopped sending") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise SourceBrokeOff(f"the connection broke off: {exc or type(exc).__name__}") from None
