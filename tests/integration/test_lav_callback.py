"""`LavCallback` in a real `transformers.Trainer` run (CPU, the demo's tiny Qwen3-VL with a fresh LoRA).

What the reporters hold is checked against an independent computation from the saved `Result`
folders (`lav.metrics` on the maps, not the callback's own scoring); training must be bit-identical
with and without the callback.
"""

from __future__ import annotations

import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import TrainerState

from lav import LavError, Result
from lav.demo.batches import processor
from lav.eval.records import safe_id
from lav.integrations import LavCallback
from lav.integrations.callback import RECORDS_DIR, rng_kept
from lav.integrations.reporters import NO_REPORTER
from lav.metrics import mass_in_box, point_in_box, pointing_game

from .train_helpers import lora_model, probe_items, train

STEPS = 4
EVERY = 2
DROPOUT = 0.1  # LoRA dropout draws from the RNG in every training step: a stray draw shows in the losses


@pytest.fixture(scope="module")
def probe():
    return probe_items(3)


@pytest.fixture(scope="module")
def watched(tmp_path_factory, probe):
    out = tmp_path_factory.mktemp("watched")
    cb = LavCallback(processor(), probe, every_n_steps=EVERY, max_new_tokens=16, images=2)
    trainer = train(out, [cb], steps=STEPS, report_to=["tensorboard"], dropout=DROPOUT)
    return out, cb, trainer


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return train(tmp_path_factory.mktemp("plain"), [], steps=STEPS, dropout=DROPOUT)


def _mean(values):
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values)


def expected_scalars(folder, probe) -> dict[str, float]:
    """The scalars of one step, from the saved result folders and `lav.metrics` alone."""
    results = [Result.load(folder / "samples" / safe_id(f"probe-{n}")) for n in range(len(probe))]
    out = {}
    for prefix, runs in (("lav/", results), ("lav/base/", [r.base for r in results])):
        out[prefix + "click_accuracy"] = _mean(
            [
                float(r.click is not None and point_in_box(r.click.x, r.click.y, p["bbox"]))
                for r, p in zip(runs, probe, strict=True)
            ]
        )
        layers = runs[0].focus_layers
        for i, layer in enumerate(layers):
            maps = [r.maps["focus"].arrays["focus_layers"][i] for r in runs]
            out[f"{prefix}focus/pointing/layer_{layer}"] = _mean(
                [
                    float(pointing_game(m, p["bbox"], r.image_size))
                    for m, p, r in zip(maps, probe, runs, strict=True)
                ]
            )
            out[f"{prefix}focus/mass/layer_{layer}"] = _mean(
                [mass_in_box(m, p["bbox"], r.image_size) for m, p, r in zip(maps, probe, runs, strict=True)]
            )
    return out


def test_tensorboard_holds_scalars_and_overlays_equal_to_the_saved_records(watched, probe):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, cb, trainer = watched
    ea = EventAccumulator(cb.log_dir, size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    steps = list(range(EVERY, STEPS + 1, EVERY))
    for step in steps:
        expected = expected_scalars(out / RECORDS_DIR / f"step-{step}", probe)
        assert len(expected) == 2 * (1 + 2 * 4)  # adapter and base: accuracy + 2 metrics x 4 layers
        for tag, value in expected.items():
            logged = {e.step: e.value for e in ea.Scalars(tag)}
            assert logged[step] == pytest.approx(value, rel=1e-6, abs=1e-7), (tag, step)
    images = ea.Tags()["images"]
    assert sorted(images) == ["lav/overlay/probe-0", "lav/overlay/probe-1"]
    for tag in images:
        events = ea.Images(tag)
        assert [e.step for e in events] == steps
        assert events[0].width > 0 and events[0].encoded_image_string[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def watched_again(watched, probe):
    """A second run into the same ``output_dir`` (one analysis, at step 2)."""
    out, first, _ = watched
    cb = LavCallback(processor(), probe[:1], every_n_steps=EVERY, max_new_tokens=8, images=1)
    train(out, [cb], steps=EVERY, report_to=["tensorboard"])
    return out, first, cb


def _scalar_steps(log_dir, tag="lav/click_accuracy"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    ea.Reload()
    return [e.step for e in ea.Scalars(tag)]


def test_a_second_run_into_the_same_output_dir_logs_into_a_run_folder_of_its_own(watched_again):
    out, first, second = watched_again
    assert first.log_dir and second.log_dir and first.log_dir != second.log_dir
    for cb in (first, second):
        # Inside this run's folder under output_dir/runs, as the trainer names its own.
        assert cb.log_dir.startswith(str(out / "runs")) and cb.log_dir.endswith("/lav")
    assert _scalar_steps(first.log_dir) == [2, 4]  # not 2, 4, 2
    assert _scalar_steps(second.log_dir) == [2]


def test_the_logged_overlays_name_their_panels_and_the_focus_layers(watched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lav.integrations.overlays import footer, panel_labels

    out, cb, _ = watched
    res = Result.load(out / RECORDS_DIR / "step-2" / "samples" / safe_id("probe-0"))
    assert panel_labels(res, 2, adapter=True) == ["adapter at step 2", "base model (adapter off)"]
    assert footer(res)[0] == "decision focus: mean of decoder layers 0-3"
    ea = EventAccumulator(cb.log_dir, size_guidance={"images": 0})
    ea.Reload()
    logged = ea.Images("lav/overlay/probe-0")[0]
    with Image.open(out / RECORDS_DIR / "step-2" / "thumbs" / f"{safe_id('probe-0')}.png") as thumb:
        # The saved thumbnail (the step report's) with a band of panel names above, of layers below.
        assert logged.width == thumb.width and logged.height > thumb.height + 30


def test_the_step_report_names_its_step(watched):
    out, _, _ = watched
    for step in range(EVERY, STEPS + 1, EVERY):
        page = (out / RECORDS_DIR / f"step-{step}" / "report.html").read_text()
        assert f"<h1>lav eval · LavCallback probe at training step {step} · " in page


def test_no_reporter_in_report_to_is_said_once(tmp_path, model, probe, capsys):
    cb = LavCallback(processor(), probe[:1], every_n_steps=1, max_new_tokens=4, compare_base=False)
    args = SimpleNamespace(output_dir=str(tmp_path), report_to=[])  # transformers 5's default
    for step in (1, 2):
        cb.run(args, _state(step), model)
    err = capsys.readouterr().err
    said = NO_REPORTER.format(saved=f" (each step is saved in {tmp_path / RECORDS_DIR})")
    assert err.count(said) == 1, err


def test_each_step_is_saved_as_an_eval_folder(watched):
    out, cb, _ = watched
    for step in range(EVERY, STEPS + 1, EVERY):
        folder = out / RECORDS_DIR / f"step-{step}"
        for name in ("samples.jsonl", "summary.json", "report.html"):
            assert (folder / name).is_file()
    assert [h["step"] for h in cb.history] == [2, 4]


def test_training_is_bit_identical_with_and_without_the_callback(watched, plain):
    _, _, with_cb = watched
    losses = [h["loss"] for h in with_cb.state.log_history if "loss" in h]
    assert len(losses) == STEPS
    assert losses == [h["loss"] for h in plain.state.log_history if "loss" in h]
    assert [h["grad_norm"] for h in with_cb.state.log_history if "grad_norm" in h] == [
        h["grad_norm"] for h in plain.state.log_history if "grad_norm" in h
    ]
    a = {k: v for k, v in with_cb.model.state_dict().items() if "lora_" in k}
    b = {k: v for k, v in plain.model.state_dict().items() if "lora_" in k}
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- one call, outside a Trainer ------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return lora_model(dropout=DROPOUT)


def _state(step: int, main: bool = True) -> TrainerState:
    state = TrainerState()
    state.global_step = step
    state.is_world_process_zero = main
    return state


def test_model_state_and_rng_are_as_found_after_a_call(tmp_path, model, probe):
    model.train()
    model.base_model.model.lm_head.eval()  # a module-level flag that differs from the model's
    before_flags = [(n, m.training) for n, m in model.named_modules()]
    before_grad = [(n, p.requires_grad) for n, p in model.named_parameters()]
    attn = model.config._attn_implementation
    torch.manual_seed(3)
    rng = torch.get_rng_state()
    cb = LavCallback(processor(), probe[:1], every_n_steps=1, max_new_tokens=8, save=False)
    values = cb.run(SimpleNamespace(output_dir=str(tmp_path), report_to=[]), _state(1), model)
    assert values and "lav/click_accuracy" in values and "lav/base/click_accuracy" in values
    assert [(n, m.training) for n, m in model.named_modules()] == before_flags
    assert [(n, p.requires_grad) for n, p in model.named_parameters()] == before_grad
    assert all(p.grad is None for p in model.parameters())
    assert model.config._attn_implementation == attn
    assert torch.equal(torch.get_rng_state(), rng)
    model.base_model.model.lm_head.train()


def test_rng_states_are_put_back_when_the_analysis_draws():
    import random

    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    with rng_kept():
        torch.rand(10), random.random(), np.random.rand(3)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])


def test_a_change_to_the_model_is_refused_loudly(tmp_path, model, probe, monkeypatch):
    cb = LavCallback(processor(), probe[:1], every_n_steps=1, save=False, compare_base=False)
    viz = cb._visualizer(model, SimpleNamespace(run_name="t"))
    param = next(p for p in model.parameters() if p.requires_grad)

    def spoil(*args, **kwargs):
        param.requires_grad_(False)
        return []

    monkeypatch.setattr(viz, "analyze_many", spoil)
    try:
        with pytest.raises(LavError, match="requires_grad"):
            cb.run(SimpleNamespace(output_dir=str(tmp_path), report_to=[]), _state(1), model)
    finally:
        param.requires_grad_(True)


def test_ranks_other_than_zero_do_nothing(tmp_path, model, probe, monkeypatch):
    cb = LavCallback(processor(), probe, every_n_steps=1)
    monkeypatch.setattr(cb, "_visualizer", lambda *a: pytest.fail("rank 1 built a visualizer"))
    args = SimpleNamespace(output_dir=str(tmp_path), report_to=["all"])
    cb.on_step_end(args, _state(1, main=False), None, model=model)
    cb.on_evaluate(args, _state(1, main=False), None, model=model)
    assert not (tmp_path / RECORDS_DIR).exists() and cb.history == []


class _FakeRun:
    def __init__(self):
        self.logged = []

    def log(self, data):
        self.logged.append(data)


def test_wandb_gets_scalars_and_images_in_the_open_run(tmp_path, model, probe, monkeypatch):
    fake = types.ModuleType("wandb")
    fake.run = _FakeRun()
    fake.Image = type("Image", (), {"__init__": lambda self, img: setattr(self, "size", img.size)})
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cb = LavCallback(
        processor(), probe[:2], every_n_steps=5, max_new_tokens=8, images=1, compare_base=False, save=False
    )
    args = SimpleNamespace(output_dir=str(tmp_path), report_to=["wandb"])
    values = cb.run(args, _state(5), model)
    (data,) = fake.run.logged
    assert data["train/global_step"] == 5
    assert {k: data[k] for k in values} == values and "lav/click_accuracy" in values
    assert [k for k in data if k.startswith("lav/overlay/")] == ["lav/overlay/probe-0"]
    assert isinstance(data["lav/overlay/probe-0"], fake.Image)
    assert not (tmp_path / RECORDS_DIR).exists()  # save=False: the overlays are logged all the same


def test_a_probe_image_that_does_not_open_is_refused_before_training(tmp_path, probe):
    bad = [*probe[:1], {"image": tmp_path / "missing.png", "instruction": "Click it", "bbox": (0, 0, 4, 4)}]
    with pytest.raises(LavError, match="probe-1"):
        LavCallback(processor(), bad)


def test_a_failed_analysis_is_said_and_training_goes_on(tmp_path, model, probe, monkeypatch, capsys):
    cb = LavCallback(processor(), probe[:1], every_n_steps=1, compare_base=False)
    viz = cb._visualizer(model, SimpleNamespace(run_name="t"))

    def fail(*args, **kwargs):
        torch.rand(3)  # what it drew is given back too
        raise LavError("the model answered nothing")

    monkeypatch.setattr(viz, "analyze_many", fail)
    rng = torch.get_rng_state()
    assert cb.run(SimpleNamespace(output_dir=str(tmp_path), report_to=[]), _state(3), model) is None
    assert (
        "step 3: the probe analysis failed, training goes on: the model answered nothing"
        in capsys.readouterr().err
    )
    assert torch.equal(torch.get_rng_state(), rng) and cb.history == []


def test_every_n_steps_and_each_evaluation_analyse_once_per_step(tmp_path, model, probe):
    cb = LavCallback(
        processor(), probe[:1], every_n_steps=2, max_new_tokens=8, compare_base=False, save=False
    )
    args = SimpleNamespace(output_dir=str(tmp_path), report_to=[])
    for step in (1, 2):
        cb.on_step_end(args, _state(step), None, model=model)
    cb.on_evaluate(args, _state(2), None, model=model)  # already analysed at this step
    cb.on_evaluate(args, _state(3), None, model=model)
    assert [h["step"] for h in cb.history] == [2, 3]
