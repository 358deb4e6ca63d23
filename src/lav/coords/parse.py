"""Find the click in a model's grounding answer: which numbers, in which format, at which characters.

Formats (``Parsed.format``). The first by position in the answer wins; where two start at the same
character the more specific one does (``(1,2),(3,4)`` is a box, not the point ``(1,2)``), and a
specific format's match starts at its keyword, tag or brace, so ``click(1, 2)`` is a click, not a
tuple, and a JSON object wins over a tuple written in its label:

- ``json-point_2d`` (point): ``{"point_2d": [x, y], "label": ..}``, alone or in a list (Qwen2.5/3-VL)
- ``json-bbox_2d`` (box): ``{"bbox_2d": [x1, y1, x2, y2], "label": ..}``, alone or in a list
- ``qwen2-vl-box`` (box): ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``
- ``qwen2-vl-point`` (point): ``<|box_start|>(x,y)<|box_end|>`` (UI-TARS)
- ``molmo-point`` (point): ``<point x=".." y=".." alt="..">``, ``<points x1=".." y1=".." ..>`` (first point)
- ``point-tag`` (point): ``<point>x y</point>``, ``<point>(x,y)</point>``
- ``pyautogui`` (point): ``pyautogui.click(x=.., y=..)``, ``pyautogui.click(x, y)``
- ``click`` (point): ``click(x=.., y=..)``, ``click(x, y)``, ``click(x, y, button='left')``
- ``key-value`` (point): ``x=.., y=..``, ``x: .., y: ..``, ``"x": .., "y": ..``
- ``box-pairs`` (box): ``(x1,y1),(x2,y2)``, which is what a Qwen2-VL box becomes once
  ``decode(skip_special_tokens=True)`` drops ``<|box_start|>`` / ``<|box_end|>``
- ``box-list`` / ``box-tuple`` (box): ``[x1, y1, x2, y2]`` / ``(x1, y1, x2, y2)``
- ``list`` / ``tuple`` (point): ``[x, y]`` / ``(x, y)``

Numbers may be negative or have decimals (``(0.42, 0.77)``); which convention they are in is
``convert``'s business, not this module's. Bare numbers in prose ("Version 2, 3 windows") are not
coordinates: every format needs brackets, a tag or a key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Digits are required after a decimal point so that a sentence's full stop ("x=3, y=4.") is not
# read as part of the number.
_NUM = r"-?(?:\d+(?:\.\d+)?|\.\d+)"
_ANY_NUMBER = re.compile(_NUM)


def _n(name: str) -> str:
    return f"(?P<{name}>{_NUM})"


_SEP = r"\s*,\s*"
_PAIR = rf"\(\s*{_n('x1')}{_SEP}{_n('y1')}\s*\){_SEP}\(\s*{_n('x2')}{_SEP}{_n('y2')}\s*\)"
_Q = r"[\"']"  # JSON from models uses double quotes, Python reprs of it single ones.


@dataclass(frozen=True)
class _Format:
    name: str
    kind: str
    # Decides between matches that start at the same character; position decides otherwise.
    priority: int
    regex: re.Pattern[str]


def _fmt(name: str, kind: str, priority: int, pattern: str) -> _Format:
    return _Format(name, kind, priority, re.compile(pattern))


_POINT_2 = rf"{_n('x')}{_SEP}{_n('y')}"
_BOX_4 = rf"{_n('x1')}{_SEP}{_n('y1')}{_SEP}{_n('x2')}{_SEP}{_n('y2')}"
# The optional braces make a JSON object's match start at its "{", so that a label written before
# the key cannot win by position.
_JSON_OPEN = r"(?:\{[^{}]*?)?"
_JSON_CLOSE = r"(?:[^{}]*\})?"
# A keyword argument that is not a number (button='left') may follow the two positional ones.
_MORE_ARGS = r"(?:\s*,\s*[A-Za-z_][^()]*)?"
_KEY_X = rf"(?<![\w.]){_Q}?[xX]{_Q}?\s*[:=]\s*{_n('x')}"
_KEY_Y = rf"\s*[,;]?\s*{_Q}?[yY]{_Q}?\s*[:=]\s*{_n('y')}"

_FORMATS: tuple[_Format, ...] = (
    _fmt(
        "json-point_2d",
        "point",
        50,
        rf"{_JSON_OPEN}{_Q}point_2d{_Q}\s*:\s*\[\s*{_POINT_2}\s*\]{_JSON_CLOSE}",
    ),
    _fmt(
        "json-bbox_2d",
        "box",
        50,
        rf"{_JSON_OPEN}{_Q}bbox_2d{_Q}\s*:\s*\[\s*{_BOX_4}\s*\]{_JSON_CLOSE}",
    ),
    _fmt("qwen2-vl-box", "box", 50, rf"<\|box_start\|>\s*{_PAIR}\s*<\|box_end\|>"),
    _fmt(
        "qwen2-vl-point",
        "point",
        50,
        rf"<\|box_start\|>\s*\(\s*{_POINT_2}\s*\)\s*<\|box_end\|>",
    ),
    _fmt(
        "molmo-point",
        "point",
        50,
        rf"<points?\s+[xX]1?\s*=\s*{_Q}\s*{_n('x')}\s*{_Q}\s+[yY]1?\s*=\s*{_Q}\s*{_n('y')}\s*{_Q}",
    ),
    _fmt(
        "point-tag",
        "point",
        50,
        rf"<point>\s*[(\[]?\s*{_n('x')}(?:\s*,\s*|\s+){_n('y')}\s*[)\]]?\s*</point>",
    ),
    _fmt("pyautogui", "point", 50, rf"pyautogui\.click\(\s*{_KEY_X}{_KEY_Y}"),
    _fmt("pyautogui", "point", 50, rf"pyautogui\.click\(\s*{_POINT_2}{_MORE_ARGS}\s*\)"),
    _fmt("click", "point", 40, rf"click\(\s*{_KEY_X}{_KEY_Y}"),
    _fmt("click", "point", 40, rf"click\(\s*{_POINT_2}{_MORE_ARGS}\s*\)"),
    _fmt("key-value", "point", 30, rf"{_KEY_X}{_KEY_Y}"),
    _fmt("box-pairs", "box", 25, _PAIR),
    _fmt("box-list", "box", 20, rf"\[\s*{_BOX_4}\s*\]"),
    _fmt("box-tuple", "box", 20, rf"\(\s*{_BOX_4}\s*\)"),
    _fmt("list", "point", 10, rf"\[\s*{_POINT_2}\s*\]"),
    _fmt("tuple", "point", 10, rf"\(\s*{_POINT_2}\s*\)"),
)

_GROUPS = {"point": (("x",), ("y",)), "box": (("x1", "x2"), ("y1", "y2"))}
_ORDER = {"point": ("x", "y"), "box": ("x1", "y1", "x2", "y2")}


@dataclass(frozen=True)
class Parsed:
    """The coordinates found in an answer, as written.

    ``values``: (x, y) for a point, (x1, y1, x2, y2) for a box, in the answer's own convention.
    ``x_spans`` / ``y_spans``: [start, end) character spans in the answer of the numbers giving x
    (a box: x1 and x2) and y (y1 and y2), minus sign and decimals included.
    """

    kind: str
    values: tuple[float, ...]
    x_spans: tuple[tuple[int, int], ...]
    y_spans: tuple[tuple[int, int], ...]
    format: str
    has_decimal: bool

    @property
    def point(self) -> tuple[float, float]:
        """The click in the answer's convention: the point, or the centre of the box."""
        if self.kind == "box":
            x1, y1, x2, y2 = self.values
            return (x1 + x2) / 2, (y1 + y2) / 2
        return self.values[0], self.values[1]


def _build(fmt: _Format, m: re.Match[str]) -> Parsed | None:
    names = _ORDER[fmt.kind]
    values = tuple(float(m.group(n)) for n in names)
    # A run of hundreds of digits overflows to inf; such a number is no coordinate.
    if not all(math.isfinite(v) for v in values):
        return None
    xs, ys = _GROUPS[fmt.kind]
    return Parsed(
        kind=fmt.kind,
        values=values,
        x_spans=tuple(m.span(n) for n in xs),
        y_spans=tuple(m.span(n) for n in ys),
        format=fmt.name,
        has_decimal=any("." in m.group(n) for n in names),
    )


def parse_answer(text: str) -> Parsed | None:
    """The first click or box in ``text``, or None when it has no coordinates in a known format."""
    found: list[tuple[int, int, int, Parsed]] = []
    for fmt in _FORMATS:
        for m in fmt.regex.finditer(text):
            parsed = _build(fmt, m)
            if parsed is not None:
                found.append((m.start(), m.end(), fmt.priority, parsed))
    if not found:
        return None
    # Specific formats begin at a keyword, tag or brace, before or at the bracket of any generic
    # match inside them, so "earliest, then most specific, then longest" picks them.
    return min(found, key=lambda c: (c[0], -c[2], c[0] - c[1]))[3]


def explain_missing(text: str) -> str:
    """One sentence saying why ``text`` gives no click, for answers where `parse_answer` is None."""
    if not text.strip():
        return "the answer is empty"
    count = len(_ANY_NUMBER.findall(text))
    if count == 0:
        return "the answer has no numbers"
    if count == 1:
        return "the answer has one number, a click needs two"
    parsed = parse_answer(text)
    if parsed is not None:
        return f"the answer has coordinates ({parsed.format}); nothing is missing"
    return (
        f"the answer has {count} numbers but none in a coordinate format "
        '((x, y), [x, y], x=.., y=.., click(x, y), {"point_2d": [x, y]}, ...)'
    )
