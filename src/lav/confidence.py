"""How sure the model was of each digit of its click, read from the scores of the pass that made it.

No extra pass: `lav.stages.run` reads the logits ``generate`` computes anyway, one step at a time
(`lav.scoring`; for a forced answer, the forced forward's logits of the answer positions only),
and reduces each answer position, as soon as its token is known, to `TokenScores`: the
log-probability of the token written, the entropy of the distribution and its `TOP_K` most likely
tokens. The full-vocabulary logits of one step at most are alive at any time. `with_confidence` then reads the tokens that spell the click's numbers:

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

    def cut_row(self, b: int) -> TokenScores:
        """Row ``b`` alone (one item of a batch's step)."""
        return TokenScores(
            self.chosen[b : b + 1], self.entropy[b : b + 1], self.top_ids[b : b + 1], self.top_logp[b : b + 1]
        )


def reduce_rows(logits: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of ``logits`` (N, vocab), any dtype, for the tokens ``chosen`` (N,), reduced on their
    device: (chosen log-prob (N,), entropy (N,), top ids (N, `TOP_K`), top log-probs (N, `TOP_K`)).

    Computed in float32 from the raw logits (float64 when the model is); nothing comes back to the
    CPU, so a generate step reduced this way waits for nothing (`rows_to_scores` brings them back).
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logp = torch.log_softmax(logits.to(dtype), dim=-1)
    entropy = torch.special.entr(logp.exp()).sum(dim=-1)
    picked = logp.gather(-1, chosen.to(logp.device).long()[:, None])[:, 0]
    top = torch.topk(logp, min(TOP_K, logp.shape[-1]), dim=-1)
    return picked, entropy, top.indices, top.values


def rows_to_scores(
    picked: torch.Tensor, entropy: torch.Tensor, top_ids: torch.Tensor, top_logp: torch.Tensor
) -> TokenScores:
    """`reduce_rows`'s tensors as `TokenScores` (float64 / int64 arrays on the CPU)."""
    return TokenScores(
        picked.double().cpu().numpy(),
        entropy.double().cpu().numpy(),
        top_ids.long().cpu().numpy(),
        top_logp.double().cpu().numpy(),
    )


def score_rows(logits: torch.Tensor, chosen: torch.Tensor) -> TokenScores:
    """`TokenScores` of rows of ``logits`` (N, vocab) for the tokens ``chosen`` (N,) (`reduce_rows`)."""
    return rows_to_scores(*reduce_rows(logits, chosen))


def join(parts: Sequence[TokenScores]) -> TokenScores:
    """Rows of several `TokenScores` in order (an item's generate steps, scored step by step)."""
    if not parts:
        empty = np.zeros((0,), dtype=np.float64)
        return TokenScores(empty, empty, np.zeros((0, TOP_K), dtype=np.int64), np.zeros((0, TOP_K)))
    return TokenScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in TokenScores.__annotations__))


def per_item(steps: Sequence[TokenScores], lengths: Sequence[int]) -> list[TokenScores]:
    """Each item's `TokenScores` from per-step scores of the whole batch (row b of each step is
    item b); item b keeps its first ``lengths[b]`` steps (the steps after its end are padding)."""
    return [join([s.cut_row(b) for s in steps[:n]]) for b, n in enumerate(lengths)]


def forced_scores(
    logits: torch.Tensor, ids: torch.Tensor, starts: Sequence[int], lengths: Sequence[int], first: int = 0
) -> list[TokenScores]:
    """Each item's `TokenScores` from a forced forward's ``logits`` (batch, seq - first, vocab) of the
    positions from ``first`` on: the token at position p is scored by the logits at p - 1."""
    out = []
    for b, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        rows = logits[b, start - 1 - first : start - 1 - first + n]
        out.append(score_rows(rows, ids[b, start : start + n]))
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
