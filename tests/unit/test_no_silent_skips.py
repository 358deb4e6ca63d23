"""No test skips over a missing dependency on its own: every such skip goes through tests/deps.py,
which fails instead under CI (CI=true), so `make test` in CI cannot pass without running it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deps import missing, require

TESTS = Path(__file__).resolve().parents[1]
# An ImportError turned into a skip by hand, or pytest's importorskip: both bypass tests/deps.py.
BYPASS = re.compile(
    r"importorskip\(|except (?:ImportError|ModuleNotFoundError)[^\n]*:\n(?:[^\n]*\n){0,3}?\s*pytest\.skip\("
)


def test_skips_over_missing_packages_go_through_tests_deps():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ("deps.py", Path(__file__).name) or path.parent.name == "browser":
            continue  # tests/browser/conftest.py fails under CI itself (Chromium, Playwright)
        text = path.read_text(encoding="utf-8")
        offenders += [
            f"{path.relative_to(TESTS)}: {m.group(0).splitlines()[0]}" for m in BYPASS.finditer(text)
        ]
    assert offenders == [], "use tests.deps.require / missing:\n" + "\n".join(offenders)


def test_a_missing_package_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_package_for_lav"):
        require("no_such_package_for_lav", "pip install it")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require("no_such_package_for_lav", "pip install it")
    with pytest.raises(pytest.fail.Exception, match="torchrun"):
        missing("torchrun is not installed")
