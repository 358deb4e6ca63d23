"""Presets: what a model needs to be run as its authors run it, as data (one JSON file per model).

Each ``<name>.json`` beside this module gives the prompt (``system``, a user ``template`` whose
``{image}`` marks where the screenshot goes, the image first when absent), the resize bounds
(``min_pixels`` / ``max_pixels`` of the processor), the coordinate convention, the answer form, the
refusals, ``max_new_tokens``, the model-id substrings that pick it (``match``) and the ``source`` it
was read from (``unread`` says what could not be read). `lav.load` applies one; `pick` finds one
from a model id or a checkpoint's ``name_or_path``. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .. import jsonsafe
from ..coords.rules import AnswerRules
from ..errors import InputError, LavError

#: What a template may hold besides ``{instruction}``: where the image goes and the resized size.
PLACEHOLDERS = ("{instruction}", "{image}", "{width}", "{height}")
#: The value of ``preset=`` / ``--preset`` that turns automatic picking off.
NO_PRESET = "none"

_FIELDS = {
    "name": str,
    "title": str,
    "families": list,
    "match": list,
    "source": list,
    "unread": (str, type(None)),
    "system": (str, type(None)),
    "template": (str, type(None)),
    "min_pixels": (int, type(None)),
    "max_pixels": (int, type(None)),
    "coords": str,
    "answer_form": str,
    "answer_example": str,
    "refusal_phrases": list,
    "refusal_sentinels": list,
    "max_new_tokens": int,
    "notes": (str, type(None)),
    "unsupported": (str, type(None)),
}


@dataclass(frozen=True)
class Preset:
    """One model's way of being run (see the module docstring for each field)."""

    name: str
    title: str
    families: tuple[str, ...]
    match: tuple[str, ...]
    source: tuple[str, ...]
    unread: str | None
    system: str | None
    template: str | None
    min_pixels: int | None
    max_pixels: int | None
    coords: str
    answer_form: str
    answer_example: str
    refusal_phrases: tuple[str, ...]
    refusal_sentinels: tuple[tuple[float, ...], ...]
    max_new_tokens: int
    notes: str | None
    unsupported: str | None

    @property
    def image_pixels(self) -> tuple[int, int] | None:
        """``(min_pixels, max_pixels)`` of the resized image, or None for the processor's own."""
        if self.min_pixels is None:
            return None
        return (self.min_pixels, self.max_pixels)  # type: ignore[return-value]

    def rules(self) -> AnswerRules:
        """The refusal phrases and sentinels of this model (the defaults' when it names none)."""
        base = AnswerRules()
        return AnswerRules(
            refusal_phrases=tuple(dict.fromkeys((*base.refusal_phrases, *self.refusal_phrases))),
            refusal_sentinels=tuple(dict.fromkeys((*base.refusal_sentinels, *self.refusal_sentinels))),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _FIELDS}


def _from_json(data: object, where: str) -> Preset:
    """A `Preset` from one file's JSON, refusing (`LavError`) a missing, unknown or mistyped field."""
    if not isinstance(data, dict):
        raise LavError(f"preset file {where} is not a JSON object")
    missing, unknown = sorted(set(_FIELDS) - set(data)), sorted(set(data) - set(_FIELDS))
    if missing or unknown:
        raise LavError(f"preset file {where}: missing fields {missing}, unknown fields {unknown}")
    for key, kind in _FIELDS.items():
        if isinstance(data[key], bool) or not isinstance(data[key], kind):
            raise LavError(f"preset file {where}: {key} is {data[key]!r}, not of type {kind}")
    if (data["min_pixels"] is None) != (data["max_pixels"] is None):
        raise LavError(f"preset file {where}: give both min_pixels and max_pixels, or neither")
    template = data["template"]
    if template is not None and "{instruction}" not in template:
        raise LavError(f"preset file {where}: the template has no {{instruction}}")
    sentinels = tuple(tuple(float(v) for v in s) for s in data["refusal_sentinels"])
    if any(len(s) not in (2, 4) for s in sentinels):
        raise LavError(f"preset file {where}: a refusal sentinel is a point (2 values) or a box (4)")
    fields = dict(data)
    fields.update(
        families=tuple(data["families"]),
        match=tuple(m.lower() for m in data["match"]),
        source=tuple(data["source"]),
        refusal_phrases=tuple(p.lower() for p in data["refusal_phrases"]),
        refusal_sentinels=sentinels,
    )
    return Preset(**fields)


@cache
def presets() -> dict[str, Preset]:
    """Every shipped preset by name, in name order."""
    out = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        preset = _from_json(jsonsafe.loads(entry.read_text(encoding="utf-8")), entry.name)
        if f"{preset.name}.json" != entry.name:
            raise LavError(f"preset file {entry.name} names itself {preset.name!r}; name the file after it")
        out[preset.name] = preset
    return out


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an `InputError` listing the others for any other name."""
    found = presets().get(name.strip().lower()) if isinstance(name, str) else None
    if found is None:
        raise InputError(
            f"unknown preset {name!r}; the presets are {', '.join(presets())} (lav presets lists them), "
            f"or {NO_PRESET!r} for none"
        )
    return found


def pick(*names: str | None) -> tuple[Preset, str] | None:
    """The preset whose ``match`` substring names one of ``names`` (a model id, a ``name_or_path``),
    with the name that matched; the longest matching substring wins (``ui-tars-1.5`` over ``ui-tars``)."""
    best: tuple[int, Preset, str] | None = None
    for name in names:
        if not name:
            continue
        # Only the last path component: a folder such as ~/ui-tars-runs/qwen3-ft names no UI-TARS model.
        low = name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
        for preset in presets().values():
            for m in preset.match:
                if m in low and (best is None or len(m) > best[0]):
                    best = (len(m), preset, name)
    return None if best is None else (best[1], best[2])


def fill(text: str, instruction: str | None = None, size: tuple[int, int] | None = None) -> str:
    """``text`` with ``{instruction}`` and the resized image's ``{width}`` / ``{height}`` put in
    (``{image}`` stays: it marks where the image goes). Other braces are text (JSON in prompts)."""
    if size is not None:
        text = text.replace("{width}", str(size[0])).replace("{height}", str(size[1]))
    if instruction is not None:  # last, so the instruction's own braces stay as written
        text = text.replace("{instruction}", instruction)
    return text


def needs_size(*texts: str | None) -> bool:
    """Whether a prompt text names the resized image's size (``{width}`` / ``{height}``)."""
    return any(t is not None and ("{width}" in t or "{height}" in t) for t in texts)


__all__ = ["NO_PRESET", "PLACEHOLDERS", "Preset", "fill", "get_preset", "needs_size", "pick", "presets"]
