"""Headless Chromium for the web page's tests and benchmark: Debian's browser, driven by Playwright.

Playwright's own browser downloads reach hosts this project does not depend
on, so the browser is Debian's ``chromium`` package, installed with apt on
first use (:mod:`cargohold.testing.debian`) and handed to Playwright by path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cargohold.testing.debian import ensure

#: Where screenshots of the page go (git ignores it); tests may point it elsewhere.
ARTIFACTS = Path("test-artifacts") / "webui"


def chromium_path() -> str:
    return ensure(lambda: shutil.which("chromium"), "chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A running headless Chromium (a Playwright ``Browser``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (CI) Chromium's sandbox cannot start; the page under test is our own.
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, base_url: str, name: str, password: str) -> None:
    """Open the page and sign in through its form; returns once the file list shows."""
    page.goto(base_url + "/ui/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()
