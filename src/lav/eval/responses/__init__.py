"""Answers generated elsewhere (vLLM, sglang, an evaluation harness), read for `lav eval --responses`.

`read_responses` parses the file once, detects its format (`REGISTRY`, first match wins; the most
particular formats first) and reads every answer; `Responses.match` pairs them with a dataset's
samples: an answer per sample id (or place, for lmms-eval), the samples the file does not answer
(with why: each is counted as an error, inside n) and the answers that match no sample.

Formats: ``lav`` (`lav eval`'s own ``samples.jsonl``), ``screenspot-pro`` (the official script's
results JSON), ``clawgui`` (ClawGUI-Eval's ``predictions.jsonl``), ``lmms-eval``
(``*_samples_<task>.jsonl``) and ``jsonl`` (``id``, ``response``). Each module cites where its
schema is published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import jsonsafe
from ...errors import InputError
from ...files import read_text, reading
from ..samples import Sample
from . import clawgui, jsonl, lav_samples, lmms_eval, screenspot_pro
from .base import DOCUMENT, LINES, Answer, ResponseFormat

#: Detection order: a lav record also has ``id`` and ``response``, so it is asked before ``jsonl``.
REGISTRY: tuple[ResponseFormat, ...] = (
    lav_samples.FORMAT,
    screenspot_pro.FORMAT,
    clawgui.FORMAT,
    lmms_eval.FORMAT,
    jsonl.FORMAT,
)
FORMATS = tuple(f.name for f in REGISTRY)

__all__ = ["FORMATS", "REGISTRY", "Answer", "Matched", "ResponseFormat", "Responses", "read_responses"]


@dataclass(frozen=True)
class Matched:
    """A file's answers against a dataset: ``answers`` by sample id, ``missing`` (sample id -> why
    it has no answer), and the answers that match no sample (``unmatched``, their keys in order)."""

    answers: dict[str, str]
    missing: dict[str, str]
    unmatched: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Responses:
    """The answers of one file: where from (``file``, its ``sha256``), the ``format`` read and the
    ``engine`` that wrote them (given, or the format's name)."""

    file: Path
    format: str
    engine: str
    sha256: str
    answers: tuple[Answer, ...]
    keyed_by: str = "id"

    def match(self, samples: Sequence[Sample]) -> Matched:
        """Pair the answers with ``samples`` (the whole dataset, in the order lav reads it)."""
        keys = {s.id: (str(n) if self.keyed_by == "position" else s.id) for n, s in enumerate(samples)}
        by_key = {a.key: a for a in self.answers}
        answers, missing = {}, {}
        for s in samples:
            a = by_key.get(keys[s.id])
            if a is None:
                missing[s.id] = f"no answer in {self.file.name}"
            elif a.text is None:
                missing[s.id] = f"{self.file.name}: {a.reason}"
            else:
                answers[s.id] = a.text
        wanted = set(keys.values())
        return Matched(answers, missing, [a.key for a in self.answers if a.key not in wanted])

    def describe(self, matched: Matched) -> dict[str, Any]:
        """What ``summary.json`` says under ``responses`` (and ``run.json`` pins)."""
        return {
            "file": str(self.file),
            "format": self.format,
            "engine": self.engine,
            "sha256": self.sha256,
            "n": len(self.answers),
            "answered": len(matched.answers),
            "missing": len(matched.missing),
            "unmatched": {
                "count": len(matched.unmatched),
                "first": matched.unmatched[0] if matched.unmatched else None,
            },
        }


def read_responses(path: str | Path, engine: str | None = None) -> Responses:
    """Read ``path`` in the format detected from its content; ``engine`` names who wrote the answers
    (default: the format's name). One id answered twice is refused (one answer per sample)."""
    what = "responses file"
    fix = "pass the file the engine or harness wrote"
    text = read_text(path, what, fix=fix)
    p = Path(path)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    document, lines = _parse(p, text, what, fix)
    bad = next((n for n, v in lines or () if not isinstance(v, dict)), None)
    if bad is not None:
        raise InputError(f"{what} {p}: record {bad} is not a JSON object; {fix}")
    first = document if lines is None else (lines[0][1] if lines else None)
    if first is None:
        raise InputError(f"{what} {p} holds no answers; {fix}")
    layout = DOCUMENT if lines is None else LINES
    for fmt in REGISTRY:
        if fmt.recognises(first) and (fmt.layout == layout or (lines is not None and len(lines) == 1)):
            if fmt.layout != layout:  # a one-line file holding one document
                document, lines = first, None
            break
    else:
        raise InputError(
            f"{what} {p}: not a format lav reads ({', '.join(FORMATS)}); a plain file needs one JSON "
            'object per line with "id" and "response"'
        )
    try:
        answers = fmt.read(document if lines is None else lines)
    except InputError as exc:
        raise InputError(f"{what} {p} ({fmt.name}): {exc}") from None
    seen: set[str] = set()
    for a in answers:
        if a.key in seen:
            raise InputError(
                f"{what} {p} ({fmt.name}) answers {'document' if fmt.keyed_by == 'position' else 'id'} "
                f"{a.key!r} twice; keep one answer per sample"
            )
        seen.add(a.key)
    if engine is not None and not engine.strip():
        raise InputError("--engine needs a name, e.g. vllm")
    return Responses(p, fmt.name, engine or fmt.name, digest, tuple(answers), fmt.keyed_by)


def _parse(p: Path, text: str, what: str, fix: str) -> tuple[Any, list[tuple[int, Any]] | None]:
    """(document, None) for a file that is one JSON object, else (None, records with their line
    numbers): JSON Lines, or a JSON list of records. A one-line file is offered both ways."""
    lines: list[tuple[int, Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = jsonsafe.loads(line)
        except ValueError:
            if lines:
                raise InputError(f"{what} {p} line {lineno} is not JSON; {fix}") from None
            with reading(p, what, fix):  # not JSON Lines: one (indented) JSON document
                value = jsonsafe.loads(text)
            return (None, list(enumerate(value, 1))) if isinstance(value, list) else (value, None)
        if isinstance(value, list) and not lines:
            return None, list(enumerate(value, 1))
        if not isinstance(value, dict):
            raise InputError(f"{what} {p} line {lineno} is not a JSON object; {fix}")
        lines.append((lineno, value))
    return None, lines
