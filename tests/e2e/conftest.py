"""Browser tests: Playwright for Python driving Debian's Chromium (`/usr/bin/chromium`,
installed by `.ci/run` / README, never downloaded by Playwright) headless against pytest-django's
`live_server`. A missing Chromium fails the test with the install command; nothing skips.
Screenshots go to `test-results/screenshots/` (gitignored)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"

# Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself
# (fixtures, assertions) are still synchronous
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium (see README)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest, page: object):  # type: ignore[no-untyped-def]
    """`shot("1-connection")` saves a full-page screenshot named after the test and step."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.name.removeprefix("test_")

    def take(step: str) -> Path:
        path = SCREENSHOTS / f"{prefix}-{step}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    return take
