"""Web page figures for bench/run.py --ui, from one cluster (8 nodes, ec:5+2) in one run.

* a 256 MiB upload through the page in headless Chromium (the file input, tus
  through tus-js-client, timed from picking the file to the page showing it
  done), as MB/s and as a ratio to ``cargohold put`` of the same file;
* time to first render of a folder of 10,000 objects: from asking for the
  folder (its address) to its first page of rows on screen, when the page is
  already open and on a cold load of the page at that address.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from cargohold.testing.browser import chromium, sign_in
from cargohold.testing.cluster import ADMIN_KEY, ADMIN_PASSWORD, Cluster

MB = 1_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
FOLDER_OBJECTS = 10_000
#: Rows of the folder's first page that must be on screen (the page asks for 200).
FIRST_ROWS = 200

_RENDERED = """async (hash) => {
    const started = performance.now();
    location.hash = hash;
    for (;;) {
        await new Promise(requestAnimationFrame);
        const rows = document.querySelectorAll('#listing tbody tr[data-key]').length;
        if (rows >= ROWS) return performance.now() - started;
    }
}""".replace("ROWS", str(FIRST_ROWS))

_COLD = """async () => {
    for (;;) {
        await new Promise(requestAnimationFrame);
        const rows = document.querySelectorAll('#listing tbody tr[data-key]').length;
        if (rows >= ROWS) return performance.now();
    }
}""".replace("ROWS", str(FIRST_ROWS))


async def _fill_folder(url: str, bucket: str, count: int, concurrency: int = 32) -> None:
    """``count`` small objects under ``many/``, ``concurrency`` PUTs at a time."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            target = f"{url}/api/v1/buckets/{bucket}/objects/many/file-{i:05d}.txt"
            async with session.put(target, data=f"object {i}\n".encode()) as reply:
                reply.raise_for_status()

    async with aiohttp.ClientSession(headers=AUTH) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def _cli_put(url: str, source: Path, target: str, home: Path) -> float:
    env = {**os.environ, "CARGOHOLD_URL": url, "CARGOHOLD_KEY": ADMIN_KEY, "HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "cargohold"), "put", "-q", str(source), target],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - started


def _page_upload(page: Any, url: str, source: Path, bucket: str) -> float:
    page.goto(f"{url}/ui/#/b/{bucket}/")
    page.locator("#listing").wait_for()
    started = time.perf_counter()
    page.locator("#pick-files").set_input_files(str(source))
    page.locator('#uploads .upload[data-state="done"]').wait_for(timeout=600_000)
    return time.perf_counter() - started


def _browse(
    browser: Any,
    url: str,
    workdir: Path,
    source: Path,
    repeat: int,
    put_rates: list[float],
    page_rates: list[float],
    home: Path,
) -> tuple[list[float], list[float]]:
    """The uploads (each beside a ``cargohold put``) and the folder renders, in one browser context."""
    size = source.stat().st_size
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, url, "admin", ADMIN_PASSWORD)
    for attempt in range(repeat):
        put_rates.append(size / _cli_put(url, source, f"cli/put-{attempt}.bin", home) / MB)
        renamed = workdir / f"page-{attempt}.bin"  # a new name: nothing to resume
        source.rename(renamed)
        try:
            page_rates.append(size / _page_upload(page, url, renamed, "page") / MB)
        finally:
            renamed.rename(source)
        page.get_by_role("button", name="Clear finished").click()
    warm: list[float] = []
    for _ in range(repeat):
        page.goto(f"{url}/ui/#/b/folder/")
        page.locator("#listing").wait_for()
        warm.append(page.evaluate(_RENDERED, "#/b/folder/many/"))
    cold: list[float] = []
    for _ in range(repeat):
        fresh = context.new_page()
        fresh.goto(f"{url}/ui/#/b/folder/many/")
        cold.append(fresh.evaluate(_COLD))
        fresh.close()
    context.close()
    return warm, cold


def bench(workdir: Path, args: Any) -> list[tuple[str, str, str]]:
    size_mib = args.ui_mib
    source = workdir / "page-upload.bin"
    with source.open("wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1024 * 1024))
    home = workdir / "home"
    home.mkdir()
    put_rates: list[float] = []
    page_rates: list[float] = []
    with Cluster(workdir / "cluster") as cluster:
        url = cluster.url
        with httpx.Client(base_url=url, headers=AUTH) as api:
            for bucket in ("cli", "page", "folder"):
                api.put(f"/api/v1/buckets/{bucket}").raise_for_status()
        started = time.perf_counter()
        # Before the browser starts: Playwright's sync API runs an event loop of its own.
        asyncio.run(_fill_folder(url, "folder", FOLDER_OBJECTS))
        fill_seconds = time.perf_counter() - started
        with chromium() as browser:
            warm, cold = _browse(browser, url, workdir, source, args.repeat, put_rates, page_rates, home)
    put, through_page = statistics.median(put_rates), statistics.median(page_rates)
    warm_ms, cold_ms = statistics.median(warm), statistics.median(cold)
    folder = f"folder of {FOLDER_OBJECTS} objects"
    return [
        (f"cargohold put {size_mib} MiB", f"{put:8.0f} MB/s", "1.00 x cargohold put"),
        (
            f"page upload {size_mib} MiB (Chromium, tus)",
            f"{through_page:8.0f} MB/s",
            f"{through_page / put:.2f} x cargohold put",
        ),
        (f"{folder}, open page", f"{warm_ms:8.0f} ms", f"{warm_ms / 1000:.2f} x 1 s target"),
        (f"{folder}, cold load", f"{cold_ms:8.0f} ms", f"{cold_ms / 1000:.2f} x 1 s target"),
        (f"(filling the folder: {FOLDER_OBJECTS} PUTs)", f"{fill_seconds:8.1f} s", ""),
    ]
