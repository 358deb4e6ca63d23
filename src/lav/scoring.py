"""Each answer position's scores read from the pass that makes it, in memory that does not grow.

`lav.confidence` needs, per answer position, the softmax of the raw logits (as the model's forward
returned them, before any logits processor of the checkpoint's ``generation_config``, such as a
repetition penalty). Keeping them until the pass ends costs batch x vocab floats per generated
step (~2.5 GB for 512 steps of a batch of 8 on a 152k vocabulary) and, for a forced answer,
batch x seq x vocab. Instead:

- `scoring_steps`: a forward hook on the transformers model ``generate`` calls (under a PEFT
  wrapper: ``get_base_model()``, whose ``__call__`` generate runs) keeps the last position's logits
  of the current step only; the next forward's ``input_ids`` carry the token chosen from them, and
  the step is reduced on its device to `confidence.TokenScores` rows at once (the last step's token
  comes from generate's ``sequences``, `StepScorer.finish`). One step's logits alive at any time.
- `forced_logits`: the forced forward computes logits only from the first answer's position on
  (``logits_to_keep`` where the model's forward takes it, else a pre-hook on the output embedding
  that hands it only those positions: the same per-position projection).

Both run under the model's lock (`lav.capture.model_lock`) and remove their hook in ``finally``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .capture import model_lock
from .confidence import TokenScores, per_item, reduce_rows, rows_to_scores
from .errors import LavError
from .models.spec import unwrap


class StepScorer:
    """Reduces each ``generate`` step's raw logits to scores as soon as its token is known.

    ``prompt``: the padded prompt length (the first generated token's position); ``batch``: rows.
    """

    def __init__(self, prompt: int, batch: int):
        self.prompt, self.batch = prompt, batch
        #: step -> (chosen log-prob, entropy, top ids, top log-probs), small tensors on the device.
        self._steps: dict[int, tuple[torch.Tensor, ...]] = {}
        #: (step, its last-position logits (batch, vocab)): the one full-vocabulary row kept.
        self._held: tuple[int, torch.Tensor] | None = None

    def _on_forward(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = output["logits"] if isinstance(output, dict) else getattr(output, "logits", None)
        if ids is None or logits is None:
            raise LavError(
                "generate called the model without input_ids or got no logits back; lav cannot read "
                "the digit confidence from it: please report the model class"
            )
        if logits.shape[0] != self.batch:
            raise LavError(
                f"generate ran {logits.shape[0]} rows for a batch of {self.batch} (beam search from the "
                "checkpoint's generation_config?); set generation_config.num_beams=1"
            )
        length = _sequence_length(kwargs, output, ids)
        first = length - ids.shape[1]  # position of ids[:, 0]
        if self._held is not None:
            step, row = self._held
            position = self.prompt + step
            if first <= position < length:
                self._reduce(step, row, ids[:, position - first])
                self._held = None
        step = length - self.prompt  # the last position's logits choose the token at `length`
        if step >= 0:  # earlier forwards are chunks of a chunked prefill
            # A copy of one position: a view would keep the prefill's whole logits alive.
            self._held = (step, logits[:, -1].detach().clone())

    def _reduce(self, step: int, row: torch.Tensor, chosen: torch.Tensor) -> None:
        self._steps[step] = reduce_rows(row, chosen)

    def finish(self, sequences: torch.Tensor, lengths: Sequence[int]) -> list[TokenScores]:
        """Each item's `TokenScores` of its first ``lengths[b]`` steps, from generate's ``sequences``."""
        steps = sequences.shape[1] - self.prompt
        if self._held is not None:
            step, row = self._held
            self._held = None
            if step < steps:  # a forward past the last token (a deferred stop check) chose nothing kept
                self._reduce(step, row, sequences[:, self.prompt + step])
        missing = [s for s in range(steps) if s not in self._steps]
        if missing:
            raise LavError(
                f"generate made steps {missing[:5]} without a forward lav saw; cannot score them: "
                "please report the model class and transformers version"
            )
        return per_item([rows_to_scores(*self._steps[s]) for s in range(steps)], lengths)


def _sequence_length(kwargs: dict[str, Any], output: Any, ids: torch.Tensor) -> int:
    """Tokens up to and including this forward's last position."""
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() == 2:
        return int(mask.shape[1])
    # transformers 5 drops an all-ones mask; the cache (``cache`` in 5, ``past_key_values`` in
    # 4.57) holds every position after the forward.
    cache = cache_of(output)
    if cache is not None and hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(ids.shape[1])  # no cache: the whole sequence is fed again


@contextmanager
def scoring_steps(model: nn.Module, prompt: int, batch: int) -> Iterator[StepScorer]:
    """A `StepScorer` hooked to ``model`` (bare or PEFT-wrapped) while the context is open."""
    with model_lock(model):
        scorer = StepScorer(prompt, batch)
        handle = unwrap(model).register_forward_hook(scorer._on_forward, with_kwargs=True)
        try:
            yield scorer
        finally:
            handle.remove()


def cache_of(output: Any) -> Any:
    """The key/value cache of a forward's output (``cache`` in transformers 5, ``past_key_values`` in
    4.57), or None."""
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else getattr(output, "past_key_values", None)


def forward_parameters(model: nn.Module) -> set[str]:
    """The keyword names ``model``'s forward (bare or PEFT-wrapped) takes; empty where it has no
    readable signature."""
    try:
        return set(inspect.signature(unwrap(model).forward).parameters)
    except (TypeError, ValueError):
        return set()


def keeps_logits(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` (not Qwen2-VL in transformers 4.57)."""
    return "logits_to_keep" in forward_parameters(model)


def forced_logits(model: nn.Module, inputs: dict[str, torch.Tensor], first: int) -> torch.Tensor:
    """The forced forward's logits (batch, seq - first, vocab) of positions ``first`` .. seq - 1 only."""
    keep = inputs["input_ids"].shape[1] - first
    with model_lock(model):
        if keeps_logits(model):
            return model(**inputs, use_cache=False, logits_to_keep=keep).logits
        head = unwrap(model).get_output_embeddings()
        handle = head.register_forward_pre_hook(lambda _m, args: (args[0][:, -keep:], *args[1:]))
        try:
            return model(**inputs, use_cache=False).logits
        finally:
            handle.remove()
