"""Which part of a model's response is its final answer: the text a click is read from.

Models that reason first name other coordinates on the way (``Thought: ... (x, y) ...``,
``<think>...</think>``, MAI-UI's ``<grounding_think>``, a sentence before a ``<tool_call>``); those are
not the decision. The answer is, in this order:

1. after the last closing reasoning tag (``</think>``, ``</thinking>``, ``</grounding_think>``, and
   Seed's ``</think_never_used_...>``); a reasoning tag opened after it and never closed means the
   response was cut off before its answer;
2. within that, inside the last ``<answer>`` (MAI-UI), else inside the last ``<tool_call>``
   (Qwen computer_use, GUI-Owl), else after the last ``Action:`` (UI-TARS);
3. with none of these markers, the whole text, where the parser takes the *last* coordinates.

Offsets stay offsets in the full response, so the answer tokens are found by character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_CLOSE = re.compile(r"</(?:grounding_)?think(?:ing)?(?:_\w+)?>")
_THINK_OPEN = re.compile(r"<(?:grounding_)?think(?:ing)?(?:_\w+)?>")
# (opening tag, closing tag): the committed answer is inside the last opening tag's block.
_BLOCKS = (("<answer>", "</answer>"), ("<tool_call>", "</tool_call>"))
_ACTION = "Action:"

# Full-width punctuation and digits (U+FF01-FF5E) and the ideographic space, one character each to
# their ASCII forms: Chinese-tuned models write （523，287）. One character for one keeps every offset.
FULLWIDTH = str.maketrans({**{chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}, "\u3000": " "})


@dataclass(frozen=True)
class Region:
    """The [start, end) characters of the final answer, and the marker that delimits it.

    ``marker``: ``None`` (no marker: the whole text), ``"</think>"`` (the closing tag as written),
    ``"<answer>"``, ``"<tool_call>"`` or ``"Action:"``. ``cut``: the opening reasoning tag that was
    never closed (the response stops inside its reasoning), else None.
    """

    start: int
    end: int
    marker: str | None
    cut: str | None = None

    def describe(self) -> str:
        """Where the answer was read, in words: 'the answer', 'the final answer (inside <answer>)'."""
        if self.marker is None:
            return "the answer"
        where = "inside" if self.marker in ("<answer>", "<tool_call>") else "after"
        return f"the final answer ({where} {self.marker})"


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def find_region(text: str) -> Region:
    """The part of ``text`` (already translated with `FULLWIDTH`) that holds the final answer."""
    start, end, marker = 0, len(text), None
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        start, marker = closes[-1].end(), closes[-1].group(0)
    opened = _THINK_OPEN.search(text, start)
    if opened is not None:
        return Region(end, end, marker, cut=opened.group(0))
    for open_tag, close_tag in _BLOCKS:
        at = text.rfind(open_tag, start, end)
        if at >= 0:
            inner = at + len(open_tag)
            stop = text.find(close_tag, inner, end)
            return Region(*_trimmed(text, inner, end if stop < 0 else stop), open_tag)
    at = text.rfind(_ACTION, start, end)
    if at >= 0:
        return Region(*_trimmed(text, at + len(_ACTION), end), _ACTION)
    return Region(*_trimmed(text, start, end), marker)
