"""Headless Chromium for the tests: Debian's `chromium`, driven by Playwright, never the network.

Playwright downloads no browser here: it starts the system's Chromium through `executable_path`.
Every request that does not stay on this machine is aborted, so a test can never fetch (or leak) anything.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

PROJECT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str:
    """The system Chromium; a missing one fails the test (never skips it) with what to do."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "headless Chromium is not installed: run `make test` (it installs Debian's chromium) "
            "or `apt-get install chromium`",
            pytrace=False,
        )
    return path


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "about", "blob"):
        return True
    return parts.scheme in ("http", "https", "ws") and (parts.hostname or "") in _LOCAL_HOSTS


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser: Browser, width: int, blocked: list[str] | None = None) -> Page:
    """A page `width` CSS pixels wide whose non-local requests are aborted (and listed in `blocked`)."""
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        device_scale_factor=1,
        java_script_enabled=True,
        service_workers="block",
    )

    def route(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            if blocked is not None:
                blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return context.new_page()


def overflow_x(page: Page) -> tuple[int, int]:
    """(document scroll width, viewport width): the first larger means horizontal scrolling."""
    result = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(result[0]), int(result[1])


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
