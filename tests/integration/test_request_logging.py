"""The request middleware on a real aiohttp server: ids, one line per fault, no second traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from cargohold import logs
from cargohold.serving import request_middleware, serve_requests

log = logging.getLogger("cargohold.tests.handler")


async def fine(request: web.Request) -> web.Response:
    log.info("handling fine")
    return web.Response(text="ok")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug in the handler")


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[httpx.AsyncClient]:
    """An app with the request middleware on a loopback port, and a client for it."""
    logs.install_request_ids()
    app = web.Application(middlewares=[request_middleware])
    serve_requests(app)
    app.router.add_get("/fine", fine)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}") as client:
            yield client
    finally:
        await runner.cleanup()


def test_request_ids_are_reused_when_well_formed_and_made_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[httpx.Response]:
        async with serving() as client:
            return [
                await client.get("/fine", headers={"X-Request-Id": "edge-42.a:b"}),
                await client.get("/fine", headers={"X-Request-Id": "no spaces allowed"}),
                await client.get("/fine"),
            ]

    caplog.set_level(logging.INFO)
    given, bad, none = asyncio.run(scenario())
    assert given.headers["X-Request-Id"] == "edge-42.a:b"
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", none.headers["X-Request-Id"])
    assert bad.headers["X-Request-Id"] != none.headers["X-Request-Id"]
    ids = [r.request_id for r in caplog.records if r.getMessage() == "handling fine"]  # type: ignore[attr-defined]
    assert ids == [given.headers["X-Request-Id"], bad.headers["X-Request-Id"], none.headers["X-Request-Id"]]


def test_a_server_fault_is_one_500_naming_the_request_and_one_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> httpx.Response:
        async with serving() as client:
            return await client.get("/broken")

    caplog.set_level(logging.INFO)
    reply = asyncio.run(scenario())
    rid = reply.headers["X-Request-Id"]
    assert reply.status_code == 500
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.json()["code"] == "internal_error"
    assert reply.json()["request_id"] == rid
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1
    assert with_traceback[0].request_id == rid  # type: ignore[attr-defined]
    assert "a bug in the handler" in caplog.text


def test_json_lines_carry_the_request_id_and_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    logs.configure_logging("json")
    try:
        token = logs.request_id.set("rid-7")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("cargohold.x").exception("it failed")
        finally:
            logs.request_id.reset(token)
        logging.getLogger("cargohold.x").warning("outside")
    finally:
        logging.getLogger().handlers.clear()
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert (first["level"], first["message"], first["request_id"]) == ("ERROR", "it failed", "rid-7")
    assert "ValueError: boom" in first["exception"]
    assert (second["message"], second["request_id"]) == ("outside", "-")
