"""``examples/vllm_generate.py`` builds the prompt `lav eval` builds: for each sample, the text its
processor is handed and the size it resizes the image to, spied on a real `lav eval` run of the same
data, for a plain model (with ``--pixels``) and with a preset (prompt, ``{width}``/``{height}``, resize
bounds). Runs without vLLM: the vLLM call itself needs a GPU and is not run here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers
from PIL import Image

from lav.cli import main
from lav.testing import tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("vllm_generate", REPO / "examples" / "vllm_generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(folder: Path) -> Path:
    """Screens of three sizes: one below a preset's min_pixels, one above the --pixels maximum."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (w, h) in enumerate([(30, 20), (96, 80), (300, 200)]):
        path = folder / f"s{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        rows.append(
            {"id": f"s{i}", "image": str(path), "instruction": f"Click button {i}", "bbox": [1, 1, 10, 10]}
        )
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _spied_eval(
    monkeypatch, model: Path, data: Path, out: Path, extra: list[str]
) -> list[tuple[str, tuple[int, int]]]:
    """Run `lav eval` and return, per processor call, the text and the resized (width, height)."""
    cls = type(transformers.AutoProcessor.from_pretrained(str(model)))
    real = cls.__call__
    patch = transformers.AutoConfig.from_pretrained(str(model)).vision_config.patch_size
    seen = []

    def spy(self, *args, **kwargs):
        enc = real(self, *args, **kwargs)
        t, h, w = (int(v) for v in enc["image_grid_thw"][0])
        seen.append((kwargs["text"][0], (w * patch, h * patch)))
        return enc

    monkeypatch.setattr(cls, "__call__", spy)
    argv = ["eval", "--model", str(model), "--data", str(data), "--out", str(out), "--device", "cpu"]
    argv += [
        "--dtype",
        "float32",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "2",
        "--focus-layers",
        "-1",
        *extra,
    ]
    assert main(argv) == 0
    monkeypatch.setattr(cls, "__call__", real)
    return seen


def _recipe_prompts(recipe, model: Path, data: Path, extra: list[str]):
    args = recipe.parse_args(["--model", str(model), "--data", str(data), "--max-new-tokens", "2", *extra])
    source, samples = recipe.requests(args)
    made = list(recipe.prompts(source, samples, recipe.options(args)))
    assert all(p is not None for _, p, _ in made)
    return args, source, [p for _, p, _ in made]


@pytest.mark.parametrize(
    ("family", "extra", "bounds"),
    [
        # plain model: the processor's prompt, the image resized into --pixels (300x200 is above it)
        ("qwen3_vl", ["--preset", "none", "--pixels", "1024:20000"], (1024, 20000)),
        # preset: its system prompt and template with {width}/{height}, its min/max pixels (30x20 is below)
        ("qwen2_5_vl", ["--preset", "infigui-g1"], (3136, 12845056)),
    ],
)
def test_recipe_prompt_is_the_prompt_lav_eval_gives_its_processor(
    recipe, monkeypatch, tmp_path, family, extra, bounds
):
    model = tiny_checkpoint(family, tmp_path / "model")
    data = _data(tmp_path / "data")
    seen = _spied_eval(monkeypatch, model, data, tmp_path / "out", extra)
    args, source, prompts = _recipe_prompts(recipe, model, data, extra)

    assert [(p.text, p.size) for p in prompts] == seen
    assert len({size for _, size in seen}) == 3  # three sizes, each resized as lav eval did
    if "{width}" in (source.preset.template if source.preset else ""):
        w, h = seen[0][1]
        assert f"{w}" in prompts[0].text and f"{h}" in prompts[0].text  # the resized size is stated
    assert all(p.pixels == bounds for p in prompts)
    engine = recipe.engine_kwargs(args, source, prompts[0].pixels)
    assert engine["mm_processor_kwargs"] == {"min_pixels": bounds[0], "max_pixels": bounds[1]}
    assert engine["model"] == str(model)
    request = recipe.vllm_input(prompts[0])
    assert request["prompt"] == seen[0][0]
    assert request["multi_modal_data"]["image"].size == Image.open(data.parent / "s0.png").size
    assert "vllm" not in sys.modules  # the recipe's prompt side needs no vLLM


def test_recipe_decodes_greedily_with_the_checkpoints_repetition_penalty(recipe, tmp_path):
    from lav.eval import prompter

    model = tiny_checkpoint("qwen2_5_vl", tmp_path / "model")
    assert recipe.sampling_kwargs(prompter(model, preset="none"), 7) == {
        "temperature": 0.0,
        "max_tokens": 7,
        "repetition_penalty": transformers.GenerationConfig.from_pretrained(str(model)).repetition_penalty
        or 1.0,
    }
    transformers.GenerationConfig(repetition_penalty=1.05).save_pretrained(model)  # Qwen2.5-VL-Instruct's
    assert recipe.sampling_kwargs(prompter(model, preset="none"), 7)["repetition_penalty"] == 1.05


def test_recipe_sizes_a_lora_rank_to_the_next_one_vllm_accepts(recipe, tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 12, "rank_pattern": {"q_proj": 24}}))
    assert recipe.lora_rank(str(tmp_path)) == 32


def test_recipe_runs_up_to_the_vllm_call_and_names_what_it_needs(tmp_path):
    # The script as a user runs it, on the demo model and a lav demo-data benchmark: every prompt is
    # built; without vLLM it stops at the GPU step with one line (with vLLM it would generate).
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here, so the script would go on to generate (that needs a GPU)")
    assert main(["demo-data", "--out", str(tmp_path / "data"), "-n", "4"]) == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(REPO / "examples" / "vllm_generate.py"), "--model", "demo"]
    cmd += ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "answers.jsonl")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("4 samples; images resized into "), lines
    assert lines[-1].startswith("generating needs vLLM and a GPU"), lines
    assert not (tmp_path / "answers.jsonl").exists()
