"""Each answer position's scores (`lav.scoring`, behind the digit confidence) against a float64
softmax of the raw logits computed here, independently: generate's own ``output_logits`` under a
repetition penalty, on a PEFT-wrapped model, in a left-padded batch whose items end at different
steps; a forced batch against the full forward's logits; and the memory the scores hold, which must
not grow with the number of generated steps."""

from __future__ import annotations

import json
import shutil
import weakref

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

import lav
from lav import stages
from lav.demo import assets
from lav.eval.demo_data import write_demo_benchmark
from lav.methods import Needs
from lav.scoring import forced_logits
from lav.testing import tiny_checkpoint

from .conftest import load

pytestmark = pytest.mark.integration

ATOL = 1e-5


def _reference(logits: torch.Tensor, tokens: torch.Tensor):
    """float64 log-probabilities of ``tokens`` (N,) under rows of ``logits`` (N, vocab), entropies."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    chosen = logp.gather(-1, tokens[:, None].long())[:, 0]
    entropy = -(logp.exp() * logp).nansum(dim=-1)
    return logp, chosen.numpy(), entropy.numpy()


def _check(scores, logits: torch.Tensor, tokens: torch.Tensor) -> None:
    logp, chosen, entropy = _reference(logits, tokens)
    np.testing.assert_allclose(scores.chosen, chosen, atol=ATOL, rtol=0)
    np.testing.assert_allclose(scores.entropy, entropy, atol=ATOL, rtol=0)
    top = torch.topk(logp, scores.top_ids.shape[1], dim=-1)
    np.testing.assert_allclose(scores.top_logp, top.values.numpy(), atol=ATOL, rtol=0)
    assert (scores.top_ids[:, 0] == top.indices[:, 0].numpy()).all()


def test_generated_scores_are_the_raw_logits_of_each_step_not_the_penalised_ones(tmp_path):
    # The demo checkpoint with a repetition penalty in its generation_config, its LoRA adapter on.
    folder = tmp_path / "base"
    shutil.copytree(assets.BASE, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.3}))
    viz = lav.load(str(folder), adapter="demo", device="cpu")
    assert hasattr(viz.model, "get_base_model")  # PEFT-wrapped
    assert viz.model.generation_config.repetition_penalty == 1.3

    data = write_demo_benchmark(tmp_path / "data", n=2)
    entries = [e for f in sorted((data / "annotations").glob("*.json")) for e in json.loads(f.read_text())]
    image = Image.open(data / "images" / entries[0]["img_filename"]).convert("RGB")
    # Two clicks that end after ten tokens and a greeting the demo model rambles on from to the end:
    # a short prompt (left padding) and items that end at different steps.
    requests = [stages.Request(image, e["instruction"]) for e in entries[:2]] + [
        stages.Request(image, "hello")
    ]
    steps = 24
    prepared = stages.prepare(viz, requests, steps)
    ran = stages.run(viz, prepared, Needs(), steps)
    inputs, start = prepared.inputs, prepared.answer_starts[0]
    assert not bool(inputs["attention_mask"][2, 0]) and bool(inputs["attention_mask"][0].all())
    lengths = [len(a) for a in ran.answers]
    assert lengths[0] < steps and lengths[2] == steps, lengths

    with torch.inference_mode():
        ref = viz.model.generate(
            **inputs,
            max_new_tokens=steps,
            do_sample=False,
            pad_token_id=stages.pad_id(viz),
            return_dict_in_generate=True,
            output_logits=True,
            output_scores=True,
        )
    assert [ref.sequences[b, start : start + n].tolist() for b, n in enumerate(lengths)] == ran.answers
    penalised = False
    for b, n in enumerate(lengths):
        raw = torch.stack([ref.logits[s][b] for s in range(n)])
        tokens = ref.sequences[b, start : start + n]
        assert len(ran.scores[b]) == n
        _check(ran.scores[b], raw, tokens)
        _, processed, _ = _reference(torch.stack([ref.scores[s][b] for s in range(n)]), tokens)
        penalised |= bool(np.abs(processed - ran.scores[b].chosen).max() > 1e-2)
    assert penalised  # the penalty changed the distributions: the check above can tell them apart


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_forced_scores_are_those_of_the_full_forward_from_the_answer_positions_only(
    family, checkpoint, screenshot
):
    model, processor = load(checkpoint(family))
    viz = lav.Visualizer(model, processor)
    requests = [
        stages.Request(screenshot, "Click the red button", response="(107, 243)"),
        stages.Request(screenshot, "Click the big red button on the right", response="(7, 3)"),
    ]
    prepared = stages.prepare(viz, requests)
    ran = stages.run(viz, prepared, Needs(), 0)
    inputs, starts = prepared.inputs, prepared.answer_starts
    assert starts[0] != starts[1]
    with torch.inference_mode():
        full = model(**inputs, use_cache=False).logits
        kept = forced_logits(model, inputs, min(starts) - 1)
    ids = inputs["input_ids"]
    assert kept.shape[1] == ids.shape[1] - min(starts) + 1 < ids.shape[1]
    for b, (start, answer) in enumerate(zip(starts, ran.answers, strict=True)):
        n = len(answer)
        assert processor.tokenizer.decode(answer) == requests[b].response
        _check(ran.scores[b], full[b, start - 1 : start - 1 + n], ids[b, start : start + n])


class _VocabTensors(TorchDispatchMode):
    """Every tensor an op makes whose last dimension is the vocabulary, weakly held: the bytes of
    those still alive are what the run holds of full-vocabulary scores."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.alive = vocab, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-1] == self.vocab:
                self.alive[id(t)] = weakref.ref(t)
        return out

    def held(self) -> int:
        alive = [t for t in (r() for r in self.alive.values()) if t is not None]
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}
        return sum(storages.values())


def test_the_scores_hold_no_more_memory_for_more_generated_steps(tmp_path, screenshot):
    vocab = 4099  # no other tensor of the tiny model ends in this size
    model, processor = load(tiny_checkpoint("qwen3_vl", tmp_path / "m", text={"vocab_size": vocab}))
    viz = lav.Visualizer(model, processor)
    requests = [stages.Request(screenshot, "Click"), stages.Request(screenshot, "Click the red button")]
    peaks = {}
    for steps in (8, 64):
        prepared = stages.prepare(viz, requests, steps)
        mode = _VocabTensors(vocab)
        seen: list[int] = []
        # Measured as each forward begins: what the earlier steps left alive.
        hook = model.register_forward_pre_hook(lambda *_, seen=seen, mode=mode: seen.append(mode.held()))
        try:
            with mode:
                ran = stages.run(viz, prepared, Needs(), steps)
        finally:
            hook.remove()
        assert len(seen) == steps and [len(s) for s in ran.scores] == [steps, steps]
        peaks[steps] = max(seen)
    row = len(requests) * vocab * 4  # one step of the batch in float32
    assert 0 < peaks[64] <= peaks[8] <= 3 * row, (peaks, row)

    # A forced batch: logits of the answer positions only, not of the whole screenshot prompt.
    forced = [
        stages.Request(screenshot, "Click", response="(1, 2)"),
        stages.Request(screenshot, "Hi", response="(3, 4)"),
    ]
    prepared = stages.prepare(viz, forced)
    mode, seen = _VocabTensors(vocab), []
    hook = model.register_forward_hook(lambda *_: seen.append(mode.held()))
    try:
        with mode:
            stages.run(viz, prepared, Needs(), 0)
    finally:
        hook.remove()
    keep = prepared.inputs["input_ids"].shape[1] - min(prepared.answer_starts) + 1
    assert keep < prepared.inputs["input_ids"].shape[1] // 4
    assert seen == [len(forced) * keep * vocab * 4]
