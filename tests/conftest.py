"""Shared test set-up: no hub access, tiny models of every family the installed transformers has.

Tiers come from where a test file sits (`TIERS`), never from a hand-kept list of tests, so CI and
`make test-fast` select them with ``-m unit`` / ``-m integration`` / ``-m e2e`` / ``-m browser``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

TESTS = Path(__file__).resolve().parent

#: Folder (or single file) under tests/ -> tier; the longest matching entry wins.
#: unit: fast (seconds at most): pure functions, tensors built in the test, at most a tiny model's
#:   geometry; the tier `make test-fast` runs, under 2 minutes on 2 cores.
#: integration: tiny models of the real transformers classes, in process, through the library.
#: e2e: `lav run` and the shipped demo through the CLI, on checkpoints saved as real folders.
#: browser: the report in Debian's Chromium.
TIERS: dict[str, str] = {
    "unit": "unit",
    "coords": "unit",
    "geometry": "unit",
    "render": "unit",
    "core/test_received.py": "unit",
    "test_inputs.py": "unit",
    "integration": "integration",
    "core": "integration",
    "demo": "integration",
    "test_checkpoint.py": "integration",
    "e2e": "e2e",
    "browser": "browser",
}
TIER_NAMES = frozenset(TIERS.values())


def tier_of(path: Path) -> str | None:
    """The tier of the test file at ``path``, or None if it sits outside every known folder."""
    try:
        rel = path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return None
    matches = [key for key in TIERS if rel == key or rel.startswith(key + "/")]
    return TIERS[max(matches, key=len)] if matches else None


def pytest_collection_modifyitems(config, items):
    unknown: set[str] = set()
    clashes: list[str] = []
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            unknown.add(str(item.path))
            continue
        # A tier marker written on a test must agree with its folder: one test, one tier.
        written = {m.name for m in item.iter_markers() if m.name in TIER_NAMES}
        if written - {tier}:
            clashes.append(f"{item.nodeid} is marked {sorted(written)} but sits in a {tier} folder")
        item.add_marker(getattr(pytest.mark, tier))
    if unknown or clashes:
        lines = [f"  {p}: no tier (add its folder to TIERS in tests/conftest.py)" for p in sorted(unknown)]
        raise pytest.UsageError("tests without exactly one tier:\n" + "\n".join(lines + clashes))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
