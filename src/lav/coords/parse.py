"""Find the click in a model's grounding answer: which numbers, in which format, at which characters.

The answer is the one the model committed to (`lav.coords.region`): after its reasoning, inside
``<answer>`` / ``<tool_call>``, after ``Action:``; with no such marker, the *last* coordinates of the
text (reasoning models name other points on the way). Within the answer, the first coordinate
expression is the click and the expressions written right after it (separated by punctuation only,
e.g. InfiGUI-G1's list of ``point_2d`` objects) are its ``candidates``. A refusal (a phrase or a
sentinel coordinate, `lav.coords.rules.AnswerRules`) is an answer with ``refusal`` set, not a click.

Formats (``Parsed.format``). Between matches that overlap, the earliest wins; where two start at the
same character the more specific one does (``(1,2),(3,4)`` is a box, not the point ``(1,2)``), and a
specific format's match starts at its keyword, tag or brace, so ``click(1, 2)`` is a click, not a
tuple, and a JSON object wins over a tuple written in its label:

- ``json-point_2d`` (point): ``{"point_2d": [x, y], "label": ..}``, alone or in a list (Qwen2.5/3-VL)
- ``json-bbox_2d`` (box): ``{"bbox_2d": [x1, y1, x2, y2], "label": ..}``, alone or in a list
- ``json-coordinate`` (point): ``{"coordinate": [x, y]}`` (MAI-UI ``<answer>``, computer_use tool calls)
- ``json-box_2d`` (box) / ``json-point`` (point): Gemini's ``{"box_2d": [ymin, xmin, ymax, xmax]}`` and
  ``{"point": [y, x]}``, values as written (``relative-1000-yx`` reads them y-first)
- ``qwen2-vl-box`` (box): ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``
- ``qwen2-vl-point`` (point): ``<|box_start|>(x,y)<|box_end|>`` (UI-TARS)
- ``ui-tars`` (point / box): ``start_box='(x,y)'``, ``start_box='[x1, y1, x2, y2]'``
- ``molmo-point`` (point): ``<point x=".." y=".." alt="..">``, ``<points x1=".." y1=".." ..>`` (first point)
- ``point-tag`` (point): ``<point>x y</point>``, ``<point>(x,y)</point>``
- ``seed-compact`` (point): ``click>point>point>x y`` (Doubao-Seed, UI-TARS ``action_parser``)
- ``step-point`` (point): ``point:x,y`` (Step-GUI)
- ``pyautogui`` (point): ``pyautogui.click(x=.., y=..)``, ``pyautogui.click(x, y)``
- ``click`` (point): ``click(x=.., y=..)``, ``click(x, y)``, ``click(x, y, button='left')``
- ``key-value`` (point): ``x=.., y=..``, ``x: .., y: ..``, ``"x": .., "y": ..`` (Holo)
- ``box-pairs`` (box): ``(x1,y1),(x2,y2)``, which is what a Qwen2-VL box becomes once
  ``decode(skip_special_tokens=True)`` drops ``<|box_start|>`` / ``<|box_end|>``
- ``box-list`` / ``box-tuple`` (box): ``[x1, y1, x2, y2]`` / ``(x1, y1, x2, y2)``
- ``list`` / ``tuple`` (point): ``[x, y]`` / ``(x, y)``

Numbers may be negative, have decimals (``(0.42, 0.77)``) or a ``px`` unit, and punctuation may be
full-width (``（523，287）``); which convention they are in is ``convert``'s business, not this
module's. Bare numbers in prose ("Version 2, 3 windows") are not coordinates: every format needs
brackets, a tag or a key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .region import FULLWIDTH, Region, find_region
from .rules import DEFAULT_RULES, AnswerRules

# Digits are required after a decimal point so that a sentence's full stop ("x=3, y=4.") is not
# read as part of the number.
_NUM = r"-?(?:\d+(?:\.\d+)?|\.\d+)"
_ANY_NUMBER = re.compile(_NUM)


def _n(name: str) -> str:
    # A unit after the number ("523px") is part of the expression, not of the number's span.
    return rf"(?P<{name}>{_NUM})(?:\s*px\b)?"


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
# The rest of a call after its x and y keywords (", button='left')"), so the expression ends at ")".
_CALL_END = r"(?:[^()]*\))?"
_BOX_OPEN = r"(?:<\|box_start\|>)?"
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
    _fmt(
        "json-coordinate",
        "point",
        50,
        rf"{_JSON_OPEN}{_Q}coordinates?{_Q}\s*:\s*\[\s*{_POINT_2}\s*\]{_JSON_CLOSE}",
    ),
    _fmt("json-box_2d", "box", 50, rf"{_JSON_OPEN}{_Q}box_2d{_Q}\s*:\s*\[\s*{_BOX_4}\s*\]{_JSON_CLOSE}"),
    _fmt("json-point", "point", 45, rf"{_JSON_OPEN}{_Q}point{_Q}\s*:\s*\[\s*{_POINT_2}\s*\]{_JSON_CLOSE}"),
    _fmt("ui-tars", "point", 50, rf"start_box\s*=\s*{_Q}\s*{_BOX_OPEN}\s*[(\[]\s*{_POINT_2}\s*[)\]]"),
    _fmt("ui-tars", "box", 50, rf"start_box\s*=\s*{_Q}\s*{_BOX_OPEN}\s*[(\[]\s*{_BOX_4}\s*[)\]]"),
    _fmt("seed-compact", "point", 50, rf"(?:\w+>)*point>\s*{_n('x')}(?:\s*,\s*|\s+){_n('y')}"),
    _fmt("step-point", "point", 50, rf"(?<![\w\"'])point\s*:\s*{_POINT_2}"),
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
    _fmt("pyautogui", "point", 50, rf"pyautogui\.click\(\s*{_KEY_X}{_KEY_Y}{_CALL_END}"),
    _fmt("pyautogui", "point", 50, rf"pyautogui\.click\(\s*{_POINT_2}{_MORE_ARGS}\s*\)"),
    _fmt("click", "point", 40, rf"click\(\s*{_KEY_X}{_KEY_Y}{_CALL_END}"),
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
    """The answer read from a response: its click (or refusal) as written, and where it was found.

    ``values``: (x, y) for a point, (x1, y1, x2, y2) for a box, in the answer's own convention and
    order (``()`` for a refusal in words). ``x_spans`` / ``y_spans``: [start, end) character spans in
    the full response of the numbers written first (a box: first and third) and second (second and
    fourth), minus sign and decimals included. ``answer_span``: the [start, end) characters of the
    part of the response that was read as the final answer. ``candidates``: the values of every
    point or box of the answer, the click first. ``refusal``: why this answer is a refusal (a phrase
    or a sentinel of `AnswerRules`), else None; ``refusal_span``: the characters that refuse.
    """

    kind: str
    values: tuple[float, ...]
    x_spans: tuple[tuple[int, int], ...]
    y_spans: tuple[tuple[int, int], ...]
    format: str
    has_decimal: bool
    answer_span: tuple[int, int] = (0, 0)
    candidates: tuple[tuple[float, ...], ...] = ()
    refusal: str | None = None
    refusal_span: tuple[int, int] | None = None

    @property
    def point(self) -> tuple[float, float]:
        """The click in the answer's convention: the point, or the centre of the box."""
        return centre(self.values)


def centre(values: tuple[float, ...]) -> tuple[float, float]:
    """A point's (x, y), or the centre of an (x1, y1, x2, y2) box."""
    if len(values) == 4:
        x1, y1, x2, y2 = values
        return (x1 + x2) / 2, (y1 + y2) / 2
    if len(values) != 2:
        raise ValueError(f"a refusal in words has no point (values {values!r})")
    return values[0], values[1]


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
        answer_span=m.span(),
        candidates=(values,),
    )


def _expressions(scan: str, region: Region) -> list[Parsed]:
    """The coordinate expressions inside ``region``, left to right, none overlapping another."""
    found: list[tuple[int, int, int, Parsed]] = []
    for fmt in _FORMATS:
        for m in fmt.regex.finditer(scan, region.start, region.end):
            parsed = _build(fmt, m)
            if parsed is not None:
                found.append((m.start(), m.end(), fmt.priority, parsed))
    # Specific formats begin at a keyword, tag or brace, before or at the bracket of any generic
    # match inside them, so "earliest, then most specific, then longest" picks them.
    found.sort(key=lambda c: (c[0], -c[2], c[0] - c[1]))
    out, cursor = [], region.start
    for start, end, _, parsed in found:
        if start >= cursor:
            out.append(parsed)
            cursor = end
    return out


# What may stand between the candidates of one answer: punctuation and space, no words or numbers.
_JOINER = re.compile(r"[\s,;\[\]{}()`]*")


def _groups(scan: str, exprs: list[Parsed]) -> list[list[Parsed]]:
    groups: list[list[Parsed]] = []
    for p in exprs:
        if groups and _JOINER.fullmatch(scan, groups[-1][-1].answer_span[1], p.answer_span[0]):
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def _sentinel(values: tuple[float, ...], rules: AnswerRules) -> tuple[float, ...] | None:
    return next((s for s in rules.refusal_sentinels if tuple(map(float, s)) == values), None)


def _phrase(scan: str, region: Region, rules: AnswerRules) -> tuple[str, tuple[int, int]] | None:
    """The refusal phrase said last in ``region`` and its characters, or None."""
    lowered = scan[region.start : region.end].lower()
    best: tuple[str, tuple[int, int]] | None = None
    for phrase in rules.refusal_phrases:
        at = lowered.rfind(phrase.lower()) if phrase else -1
        if at >= 0 and (best is None or region.start + at > best[1][0]):
            best = phrase, (region.start + at, region.start + at + len(phrase))
    return best


def parse_answer(text: str, rules: AnswerRules | None = None) -> Parsed | None:
    """The final answer of ``text``: its click or box, or a refusal; None when it has neither.

    ``rules``: the refusal phrases and sentinels (`AnswerRules`; None: `DEFAULT_RULES`). The answer
    is read from the part `lav.coords.region.find_region` finds; with a marker the first expression
    there is the click, without one the last expression of the text is. Offsets are in ``text``.
    """
    rules = DEFAULT_RULES if rules is None else rules
    scan = text.translate(FULLWIDTH)
    region = find_region(scan)
    exprs = _expressions(scan, region)
    groups = _groups(scan, exprs)
    said = _phrase(scan, region, rules)
    if not groups:
        if said is None:
            return None
        phrase, span = said
        return Parsed(
            kind="refusal",
            values=(),
            x_spans=(),
            y_spans=(),
            format="refusal-phrase",
            has_decimal=False,
            answer_span=(region.start, region.end),
            refusal=f"the answer says {phrase!r}",
            refusal_span=span,
        )
    group = groups[0] if region.marker is not None else groups[-1]
    first = group[0]
    span = (
        (region.start, region.end)
        if region.marker is not None
        else (first.answer_span[0], group[-1].answer_span[1])
    )
    parsed = replace(first, answer_span=span, candidates=tuple(p.values for p in group))
    sentinel = _sentinel(first.values, rules)
    if sentinel is not None:
        written = ", ".join(f"{v:g}" for v in sentinel)
        return replace(
            parsed, refusal=f"the answer is the refusal sentinel [{written}]", refusal_span=first.answer_span
        )
    # Without a marker the text may reason, and a phrase counts only as its last word: after the
    # coordinates read ("no such element? ... it is at (1, 2)" clicks).
    if said is not None and (region.marker is not None or said[1][0] >= span[1]):
        return replace(parsed, refusal=f"the answer says {said[0]!r}", refusal_span=said[1])
    return parsed


def explain_missing(text: str, rules: AnswerRules | None = None) -> str:
    """One sentence saying why ``text`` gives no click, for answers where `parse_answer` is None."""
    if not text.strip():
        return "the answer is empty"
    scan = text.translate(FULLWIDTH)
    region = find_region(scan)
    if region.cut is not None:
        return (
            f"the answer stops inside {region.cut} before its final answer (cut off? reasoning models "
            "need max_new_tokens of 512 or more)"
        )
    part = scan[region.start : region.end]
    subject = region.describe()
    if not part.strip():
        return f"{subject} is empty"
    count = len(_ANY_NUMBER.findall(part))
    if count == 0:
        return f"{subject} has no numbers"
    if count == 1:
        return f"{subject} has one number, a click needs two"
    parsed = parse_answer(text, rules)
    if parsed is not None:
        return f"{subject} has coordinates ({parsed.format}); nothing is missing"
    return (
        f"{subject} has {count} numbers but none in a coordinate format "
        '((x, y), [x, y], x=.., y=.., click(x, y), {"point_2d": [x, y]}, ...)'
    )
