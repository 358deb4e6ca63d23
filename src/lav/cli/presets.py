"""`lav presets`: the models lav knows how to run, or one preset in full."""

from __future__ import annotations

import argparse

NAME = "presets"


def add_parser(subparsers) -> None:
    """Register ``presets`` on the ``lav`` command's sub-parsers."""
    p = subparsers.add_parser(NAME, help="the models lav knows how to run: prompt, convention, source")
    p.add_argument("name", nargs="?", help="show this preset in full")


def run(args: argparse.Namespace) -> int:
    from ..presets import get_preset, presets

    if args.name is not None:
        p = get_preset(args.name)
        for key, value in p.to_dict().items():
            if isinstance(value, tuple):
                value = ", ".join(str(v) for v in value) or "-"
            print(f"{key}: {value if value is not None else '-'}")
        return 0
    rows = [("name", "family", "convention", "tokens", "source")]
    for p in presets().values():
        family = ",".join(p.families) + (" (not runnable)" if p.unsupported else "")
        rows.append((p.name, family, p.coords, str(p.max_new_tokens), p.source[0]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    print("lav presets NAME shows one in full (prompt, image size, answer form, what could not be read)")
    return 0
