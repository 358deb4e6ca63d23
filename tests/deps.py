"""Tests that need an optional package or tool: skip, naming how to install it -- except under CI
(``CI=true``), where a missing dependency fails, so CI can never pass without running a test.

Every such skip goes through here (tests/unit/test_no_silent_skips.py holds the suite to it).
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import NoReturn

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> NoReturn:
    """Skip with ``what`` (what is missing and how to install it); fail instead under CI."""
    if on_ci():
        pytest.fail(f"{what} (CI is set, so this test must run, not skip)", pytrace=False)
    pytest.skip(what)


def require(module: str, install: str) -> ModuleType:
    """``module`` imported, or `missing` naming ``install`` (the command that provides it)."""
    try:
        return import_module(module)
    except ImportError as exc:
        missing(f"{module} cannot be imported ({exc}); {install}")
