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
