"""`lav eval`'s folder under the output-folder rule of every lav command (issue 27): a user's edit
stops the rerun, two runs never write one folder, a resume after the adapter's weights changed is
refused (the fingerprint is over content), and a summary counts each sample id once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import lav
from lav.errors import LavError
from lav.eval import engine

from .test_eval_engine import _data_jsonl, _dataset, model_dirs, viz  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
FAST = {"batch_size": 2, "max_new_tokens": 4, "progress": False}


def test_a_rerun_refuses_a_report_the_user_edited_and_keeps_it(viz, tmp_path):  # noqa: F811
    ds = _dataset(tmp_path / "img", 2)
    for name in ("report.html", "summary.json"):
        lav.evaluate(viz, ds, tmp_path / name, **FAST)
        lav.evaluate(viz, ds, tmp_path / name, **FAST)  # its own output: the rerun goes through
        mine = tmp_path / name / name
        kept = mine.read_text() + "\n<!-- my notes -->"
        mine.write_text(kept)
        with pytest.raises(LavError, match=f"{name} that changed after lav wrote it"):
            lav.evaluate(viz, ds, tmp_path / name, **FAST)
        assert mine.read_text() == kept


def test_a_resume_after_the_adapters_weights_changed_is_refused(model_dirs, tmp_path):  # noqa: F811
    base, adapter = model_dirs
    mine = shutil.copytree(adapter, tmp_path / "adapter")
    ds = _dataset(tmp_path / "img", 2)
    first = lav.load(base, adapter=mine, device="cpu")
    lav.evaluate(first, ds, tmp_path / "ev", **FAST)
    weights = mine / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.5 if "lora_B" in k else v for k, v in tensors.items()}, weights)  # same path
    second = lav.load(base, adapter=mine, device="cpu")
    with pytest.raises(LavError, match="adapter_sha256"):
        lav.evaluate(second, ds, tmp_path / "ev", **FAST)


def test_the_summary_counts_each_sample_id_once_and_says_so(viz, tmp_path):  # noqa: F811
    ds = _dataset(tmp_path / "img", 2)
    ev = lav.evaluate(viz, ds, tmp_path / "ev", **FAST)
    twice = engine._summary(ev.records + ev.records, "m", None, ds, {})
    once = engine._summary(ev.records, "m", None, ds, {})
    assert twice["n_samples"] == once["n_samples"] == 2 and twice["correct"] == once["correct"]
    assert any("counted once" in note for note in twice["notes"])


def test_two_lav_evals_on_one_out_the_second_refuses_naming_the_first(model_dirs, tmp_path):  # noqa: F811
    data = _data_jsonl(tmp_path, 4)
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "lav.cli", "eval", "--model", str(model_dirs[0]), "--adapter"]
    cmd += [
        str(model_dirs[1]),
        "--data",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--batch-size",
        "1",
    ]
    cmd += ["--max-new-tokens", "4"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(REPO / "src")
    first = subprocess.Popen(cmd, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        lock = out / ".lav-lock"
        while first.poll() is None and time.monotonic() < deadline:
            if lock.exists() and b"pid" in lock.read_bytes():
                break
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # holds its lock, mid-run, until we let it go on
        second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"in use by another lav run (process {first.pid})" in lines[0]
        assert first.wait(timeout=600) == 0
    finally:
        first.kill()
    summary = json.loads((out / "summary.json").read_text())
    records = (out / "samples.jsonl").read_text().splitlines()
    assert summary["n_samples"] == len(records) == 3  # _data_jsonl drops the negative sample s3
