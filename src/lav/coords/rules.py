"""What counts as a refusal in an answer, per model: plain data that presets fill in.

A grounding model asked for a target that is not on the screen answers with a *refusal*: a phrase
("Target does not exist", the ScreenSpot-Pro prompt's offer) or a sentinel coordinate (``[-1, -1]``,
``[-1, -1, -1, -1]``, ``pyautogui.click(x=-1, y=-1)``: UI-Venus, OpenCUA, GUI-G2). A refusal is an
answer, not a click: it gives ``click = None`` with ``refused = True``. A coordinate outside the image
that is not a sentinel stays a click with its range flag.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Phrases that refuse, matched case-insensitively as substrings of the final answer.
DEFAULT_REFUSAL_PHRASES: tuple[str, ...] = (
    "target does not exist",
    "target not found",
    "no such element",
    "element does not exist",
    "not present in the screenshot",
)
#: Coordinates that mean "no target" (a point or a box whose every value equals the sentinel's).
DEFAULT_REFUSAL_SENTINELS: tuple[tuple[float, ...], ...] = ((-1.0, -1.0), (-1.0, -1.0, -1.0, -1.0))


@dataclass(frozen=True)
class AnswerRules:
    """How to read a model's answer beyond its coordinates: which phrases and sentinels refuse.

    ``refusal_phrases``: lower-case substrings; ``refusal_sentinels``: point (2 values) or box
    (4 values) tuples that mean "no target". Presets (`lav.presets`) set both per model.
    """

    refusal_phrases: tuple[str, ...] = DEFAULT_REFUSAL_PHRASES
    refusal_sentinels: tuple[tuple[float, ...], ...] = DEFAULT_REFUSAL_SENTINELS


DEFAULT_RULES = AnswerRules()
