"""The README's TRL `SFTTrainer` example, run as it stands, with `LavCallback` watching: what it logs
and saves, and that training is bit-identical without the callback (the same script, callback off)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = "<!-- tested: tests/e2e/test_trl_journey.py -->"
CALLBACKS = re.compile(r"^    callbacks=\[LavCallback\(.*\)\],\n", re.M)

pytestmark = pytest.mark.skipif(
    int(transformers.__version__.split(".")[0]) < 5,
    reason="newest transformers only, as the README says: the TRL journey is run with transformers 5",
)


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(MARK)) + len("```python\n")
    return text[start : text.index("\n```\n", start) + 1]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    script = cwd / f"example-{len(list(cwd.glob('example-*.py')))}.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _scalars(folder: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars(tag)} if tag in ea.Tags()["scalars"] else {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("trl")
    code = _example()
    watched = _run(code, cwd)
    plain, n = CALLBACKS.subn("", code)
    assert n == 1  # the example's one callback line, taken out
    _run(plain, cwd)
    return cwd / "sft-demo", watched


def test_the_callback_logs_each_analysed_step_into_a_lav_run_of_its_own(runs):
    out, watched = runs
    (lav_run,) = sorted(out.glob("runs/*/lav"))
    assert _scalars(lav_run, "lav/click_accuracy").keys() == {4, 8}
    assert _scalars(lav_run, "lav/base/click_accuracy").keys() == {4, 8}
    assert "reach no dashboard" not in watched.stderr  # report_to names tensorboard


def test_each_analysed_step_is_saved_with_its_step_in_the_report(runs):
    out, _ = runs
    for step in (4, 8):
        page = (out / "lav" / f"step-{step}" / "report.html").read_text(encoding="utf-8")
        assert f"<h1>lav eval · LavCallback probe at training step {step} · " in page


def test_training_is_bit_identical_with_and_without_the_callback(runs):
    out, _ = runs
    trainer_runs = [d for d in sorted(out.glob("runs/*")) if _scalars(d, "train/loss")]
    assert len(trainer_runs) == 2  # one folder per run, as the trainer names them
    watched, plain = (_scalars(d, "train/loss") for d in trainer_runs)
    assert len(watched) == 8 and watched == plain
    assert _scalars(trainer_runs[0], "train/grad_norm") == _scalars(trainer_runs[1], "train/grad_norm")
