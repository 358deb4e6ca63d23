"""Where `LavCallback` puts its TensorBoard run, per transformers release and environment."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

from lav.integrations.reporters import run_name, tensorboard_dir


def test_transformers_4_logging_dir_holds_the_lav_run(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    args = SimpleNamespace(output_dir=str(tmp_path), logging_dir=str(tmp_path / "runs" / "Dec07_05-00-00_h"))
    assert tensorboard_dir(args, "runs/other") == str(tmp_path / "runs" / "Dec07_05-00-00_h" / "lav")


def test_transformers_5_without_logging_dir_gets_a_run_folder_per_run(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    args = SimpleNamespace(output_dir=str(tmp_path))  # TrainingArguments 5.x has no logging_dir
    name = run_name()
    assert re.fullmatch(r"runs/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+", name.replace(os.sep, "/"))
    assert tensorboard_dir(args, name) == os.path.join(str(tmp_path), name, "lav")
    assert tensorboard_dir(args, "runs/a") != tensorboard_dir(args, "runs/b")


def test_tensorboard_logging_dir_is_where_the_trainer_writes_too(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    assert tensorboard_dir(SimpleNamespace(output_dir="out"), "runs/x") == str(tmp_path / "tb" / "lav")
