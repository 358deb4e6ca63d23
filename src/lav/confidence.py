"""How sure the model was of each digit of its click, read from the scores of the pass that made it.

No extra pass: `lav.stages.run` keeps the logits ``generate`` computes anyway (``output_logits``;
for a forced answer, the forced forward's logits) and reduces every answer position at once to
`TokenScores`: the log-probability of the token written, the entropy of the distribution and its
`TOP_K` most likely tokens. `with_confidence` then reads the tokens that spell the click's numbers:

- ``digits``: per number token, its text, the axis (``x`` / ``y``), the probability of the token
  written (softmax of the raw logits, no temperature) and the entropy in nats;
- ``confidence``: the product of those probabilities (the probability of the numbers as written,
  given the text before them);
- ``alternatives``: the `ALTERNATIVES` most likely other clicks, from a beam (width `BEAM`) over
  the leading `LEADING` digit tokens of each number, each replaced by the other digit tokens among
  its top tokens (same length, digits only); the trailing digits stay as written. The probabilities
  are those along the answer's own path (a digit after a changed one is scored as it was
  conditioned on the written digit): a ranking of nearby readings, not a re-generation.

Qwen tokenizers (and `lav.testing`'s) write one digit per token; a tokenizer that writes several
digits in one token gets alternatives of the same length for that token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .coords import AnswerRules, Click, oriented, parse_answer, to_click, tokens_for_spans

#: Tokens kept per answer position, most likely first (the digit alternatives come from them).
TOP_K = 16
#: Leading digit tokens of each number whose alternatives the beam explores.
LEADING = 2
#: Partial readings the beam keeps per position.
BEAM = 8
#: Alternative clicks reported.
ALTERNATIVES = 3

#: The click's numbers are re-read from the same final answer; refusals were decided before.
_NO_REFUSALS = AnswerRules(refusal_phrases=(), refusal_sentinels=())


@dataclass(frozen=True)
class TokenScores:
    """One item's answer positions, scored: ``chosen`` (T,) log-probability of the token written,
    ``entropy`` (T,) in nats, ``top_ids`` / ``top_logp`` (T, `TOP_K`) the most likely tokens."""

    chosen: np.ndarray
    entropy: np.ndarray
    top_ids: np.ndarray
    top_logp: np.ndarray

    def __len__(self) -> int:
        return int(self.chosen.shape[0])

    def cut(self, n: int) -> TokenScores:
        return TokenScores(self.chosen[:n], self.entropy[:n], self.top_ids[:n], self.top_logp[:n])


def score_rows(logits: torch.Tensor, chosen: torch.Tensor) -> TokenScores:
    """`TokenScores` of rows of ``logits`` (N, vocab), any dtype, for the tokens ``chosen`` (N,).

    Computed in float32 from the raw logits (float64 when the model is), on their device; only the
    small arrays come back to the CPU.
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logp = torch.log_softmax(logits.to(dtype), dim=-1)
    entropy = torch.special.entr(logp.exp()).sum(dim=-1)
    picked = logp.gather(-1, chosen.to(logp.device).long()[:, None])[:, 0]
    top = torch.topk(logp, min(TOP_K, logp.shape[-1]), dim=-1)
    return TokenScores(
        picked.double().cpu().numpy(),
        entropy.double().cpu().numpy(),
        top.indices.cpu().numpy(),
        top.values.double().cpu().numpy(),
    )


def join(parts: Sequence[TokenScores]) -> TokenScores:
    """Rows of several `TokenScores` in order (an item's generate steps, scored step by step)."""
    if not parts:
        empty = np.zeros((0,), dtype=np.float64)
        return TokenScores(empty, empty, np.zeros((0, TOP_K), dtype=np.int64), np.zeros((0, TOP_K)))
    return TokenScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in TokenScores.__annotations__))


def generated_scores(
    logits: Sequence[torch.Tensor], sequences: torch.Tensor, start: int, lengths: Sequence[int]
) -> list[TokenScores]:
    """Each item's `TokenScores` from generate's per-step ``logits`` ((batch, vocab) per step) and
    ``sequences``; the answer starts at ``start`` and item b keeps its first ``lengths[b]`` steps."""
    steps = [score_rows(step, sequences[:, start + s]) for s, step in enumerate(logits)]
    out = []
    for b, n in enumerate(lengths):
        rows = [
            TokenScores(
                s.chosen[b : b + 1], s.entropy[b : b + 1], s.top_ids[b : b + 1], s.top_logp[b : b + 1]
            )
            for s in steps[:n]
        ]
        out.append(join(rows))
    return out


def forced_scores(
    logits: torch.Tensor, ids: torch.Tensor, starts: Sequence[int], lengths: Sequence[int]
) -> list[TokenScores]:
    """Each item's `TokenScores` from a forced forward's ``logits`` (batch, seq, vocab): the token at
    position p is scored by the logits at p - 1."""
    out = []
    for b, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        out.append(score_rows(logits[b, start - 1 : start - 1 + n], ids[b, start : start + n]))
    return out


def _digits(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def with_confidence(
    click: Click,
    text: str,
    offsets: Sequence[tuple[int, int]],
    scores: TokenScores,
    decode: Callable[[int], str],
    resized: tuple[int, int],
    original: tuple[int, int],
) -> Click:
    """``click`` with ``confidence``, ``digits`` and ``alternatives`` filled in from ``scores`` (the
    answer's positions) for the answer ``text`` whose tokens cover ``offsets``; ``decode`` gives a
    token id's text. A click whose numbers cannot be located in the tokens is returned as it is."""
    parsed = parse_answer(text, _NO_REFUSALS)
    if parsed is None or parsed.refusal is not None or len(scores) < len(offsets):
        return click
    xy = oriented(parsed, click.convention)
    numbers = [("x", s) for s in xy.x_spans] + [("y", s) for s in xy.y_spans]
    numbers.sort(key=lambda n: n[1][0])
    groups = [(axis, tokens_for_spans(offsets, [span])) for axis, span in numbers]
    if not any(tokens for _, tokens in groups):
        return click
    digits: list[dict[str, Any]] = []
    for axis, tokens in groups:
        for i in tokens:
            a, b = offsets[i]
            digits.append(
                {
                    "token": text[a:b],
                    "axis": axis,
                    "p": math.exp(float(scores.chosen[i])),
                    "entropy": float(scores.entropy[i]),
                }
            )
    confidence = math.exp(sum(float(scores.chosen[i]) for _, tokens in groups for i in tokens))
    alternatives = _alternatives(click, text, offsets, scores, decode, groups, resized, original)
    return replace(click, confidence=confidence, digits=tuple(digits), alternatives=tuple(alternatives))


def _alternatives(click, text, offsets, scores, decode, groups, resized, original) -> list[dict[str, Any]]:
    """The most likely other clicks: a beam over the leading digit tokens of each number."""
    options: list[tuple[int, list[tuple[str, float]]]] = []
    for _, tokens in groups:
        leading = [i for i in tokens if _digits(text[offsets[i][0] : offsets[i][1]])][:LEADING]
        for i in leading:
            written = text[offsets[i][0] : offsets[i][1]]
            opts = [(written, float(scores.chosen[i]))]
            for tid, lp in zip(scores.top_ids[i], scores.top_logp[i], strict=True):
                other = decode(int(tid))
                if _digits(other) and len(other) == len(written) and other != written:
                    opts.append((other, float(lp)))
            options.append((i, opts))
    # Every other token of the numbers is kept as written: its log-probability is common to all.
    fixed = sum(float(scores.chosen[i]) for _, tokens in groups for i in tokens) - sum(
        opts[0][1] for _, opts in options
    )
    beam: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for _, opts in options:
        grown = [(seq + (j,), lp + opts[j][1]) for seq, lp in beam for j in range(len(opts))]
        beam = sorted(grown, key=lambda s: -s[1])[:BEAM]
    out: list[dict[str, Any]] = []
    for seq, lp in beam:
        if not any(seq):
            continue  # the answer as written
        pieces, last = [], 0
        for (i, opts), j in zip(options, seq, strict=True):
            a, b = offsets[i]
            pieces += [text[last:a], opts[j][0]]
            last = b
        alt = parse_answer("".join(pieces) + text[last:], _NO_REFUSALS)
        if alt is None or alt.refusal is not None or len(alt.values) != len(click.raw):
            continue
        other = to_click(alt, click.convention, resized, original)
        out.append({"x": other.x, "y": other.y, "raw": list(alt.values), "p": math.exp(lp + fixed)})
        if len(out) == ALTERNATIVES:
            break
    return out
