"""Every test in tests/browser needs Debian's Chromium and Playwright (never `playwright install`).

Where one is missing, the tests skip before anything is built and name the command that installs
it; under CI (``CI=true``) they fail instead, so CI can never pass without running them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI is set, so the browser tests must run, not skip)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session", autouse=True)
def _browser_parts():
    # Session-scoped and autouse, so it runs before the session fixtures that build pages.
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing(
            "playwright is not installed: pip install -e '.[dev]' (or pip install 'playwright>=1.40'); "
            "it drives the system Chromium, so do not run 'playwright install'"
        )
    if not Path(CHROMIUM).exists():
        _missing(
            f"{CHROMIUM} is missing: install Debian's Chromium as root with "
            "'apt-get update && apt-get install -y chromium' (make install does it where it can)"
        )


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser(_browser_parts):
    """One Chromium for the whole session: Playwright's sync API allows one running instance per
    thread, so every browser test file shares this one."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Error as err:
            pytest.fail(
                f"{CHROMIUM} did not start under Playwright ({err}); reinstall it with "
                "'apt-get install -y --reinstall chromium'",
                pytrace=False,
            )
        yield chromium
        chromium.close()
