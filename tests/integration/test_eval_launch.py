"""`lav eval` under launchers: ``accelerate launch`` with two CPU processes merges to the one-process
output (as torchrun does, `test_eval_engine`); ``accelerate launch --cpu``, which starts one process,
is refused with the command that works; a ``--device`` that is not the rank's is refused before any
work; two "nodes" (two torchrun agents started with the README's command) merge every sample when
they share ``--out``, and stop with the shared-storage line instead of merging half a run when their
``--out`` are different folders."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lav.cli import main
from tests.deps import missing
from tests.integration.test_eval_engine import _approx_equal, _data_jsonl, model_dirs  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        missing(
            f"{name} is not installed beside this python (pip install accelerate; torchrun comes with torch)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["HF_HOME"] = str(tmp_path / "hf")  # no accelerate config file of the user's (default_config.yaml)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _accelerate(*flags: str) -> list[str]:
    # Every value accelerate would otherwise default (and warn about) given.
    return [_tool("accelerate"), "launch", *flags, "--num_machines", "1", "--mixed_precision", "no"] + [
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "lav.cli",
    ]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_merge_to_the_single_process_output(model_dirs, tmp_path):  # noqa: F811
    data = _data_jsonl(tmp_path, 6)
    args = ["eval", "--model", str(model_dirs[0]), "--adapter", str(model_dirs[1]), "--data", str(data)]
    args += ["--compare-base", "--batch-size", "1", "--max-new-tokens", "6", "--device", "cpu"]
    args += ["--dtype", "float32"]
    env = _env(tmp_path)
    run = dict(env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    single = subprocess.run(
        [sys.executable, "-m", "lav.cli", *args, "--out", str(tmp_path / "single")], **run
    )
    assert single.returncode == 0, single.stderr
    # --multi_gpu is accelerate's several-process launcher (torch's elastic agent); on a machine
    # without GPUs its ranks run on the CPU, and --device cpu keeps them there on one with GPUs.
    multi = subprocess.run(
        [*_accelerate("--multi_gpu", "--num_processes", "2"), *args, "--out", str(tmp_path / "multi")], **run
    )
    assert multi.returncode == 0, multi.stderr[-3000:]
    for rank in range(2):
        assert (tmp_path / "multi" / "shards" / f"rank-{rank}" / "samples.jsonl").exists()
    one = [json.loads(x) for x in (tmp_path / "single" / "samples.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "multi" / "samples.jsonl").read_text().splitlines()]
    _approx_equal(two, one, "records")
    _approx_equal(
        json.loads((tmp_path / "multi" / "summary.json").read_text()),
        json.loads((tmp_path / "single" / "summary.json").read_text()),
    )


def test_accelerate_launch_cpu_which_starts_one_process_is_refused(tmp_path):
    args = ["eval", "--model", "demo", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out")]
    done = subprocess.run(
        [*_accelerate("--cpu", "--num_processes", "2"), *args],
        env=_env(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # accelerate exits 1 with its own traceback when its process exits 2 (lav's refusal, one line).
    assert done.returncode != 0 and "returned non-zero exit status 2" in done.stderr, done.stderr[-2000:]
    ours = [
        x for x in done.stderr.splitlines() if x.startswith("lav: error: accelerate launch --cpu started one")
    ]
    assert ours and "--multi_gpu" in ours[0], done.stderr[-2000:]


def test_a_device_other_than_the_ranks_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    args = ["eval", "--model", "demo", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out")]
    assert main([*args, "--device", "cuda:0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda:0 on rank 1, whose device is cuda:1" in err[0], err


def _two_nodes(model, data: Path, tmp_path: Path, folders: list[Path]) -> list[tuple[int, str]]:
    """Two torchrun agents as two nodes (one rank each), node I started in ``folders[I]`` with the
    README's command and ``--out out``; each node's exit code and stderr."""
    port = str(_free_port())
    env = {**_env(tmp_path), "LAV_SHARED_WAIT": "2"}
    nodes = []
    for node, cwd in enumerate(folders):
        cwd.mkdir(exist_ok=True)
        cmd = [_tool("torchrun"), "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1"]
        cmd += ["--rdzv_endpoint", f"127.0.0.1:{port}", "-m", "lav.cli", "eval"]  # as the README says
        cmd += ["--model", str(model), "--data", str(data), "--out", "out", "--device", "cpu"]
        cmd += ["--max-new-tokens", "2", "--batch-size", "1"]
        popen = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        nodes.append(popen)
    done = []
    for proc in nodes:
        _, err = proc.communicate(timeout=600)
        done.append((proc.returncode, err))
    return done


@pytest.mark.slow
def test_two_nodes_sharing_out_merge_every_sample(model_dirs, tmp_path):  # noqa: F811
    data = _data_jsonl(tmp_path, 4)
    for code, err in _two_nodes(model_dirs[0], data, tmp_path, [tmp_path / "shared"] * 2):
        assert code == 0, err[-3000:]
    out = tmp_path / "shared" / "out"
    merged = [json.loads(x)["id"] for x in (out / "samples.jsonl").read_text().splitlines()]
    assert merged == [json.loads(x)["id"] for x in data.read_text().splitlines()]
    assert json.loads((out / "summary.json").read_text())["n_samples"] == len(merged)
    parts = [
        json.loads(x)["id"]
        for r in range(2)
        for x in (out / "shards" / f"rank-{r}" / "samples.jsonl").read_text().splitlines()
    ]
    assert sorted(parts) == sorted(merged)  # each sample run once, by one of the nodes


@pytest.mark.slow
def test_two_nodes_whose_out_is_not_shared_stop_with_the_storage_line(model_dirs, tmp_path):  # noqa: F811
    data = _data_jsonl(tmp_path, 2)
    # Each "node" runs in its own folder: the same relative --out is two folders, as on local disks.
    done = _two_nodes(model_dirs[0], data, tmp_path, [tmp_path / "node0", tmp_path / "node1"])
    for node, (code, err) in enumerate(done):
        assert code != 0
        assert f"rank {node} does not see rank {1 - node}'s part listed in" in err, err[-3000:]
        assert "shared storage" in err
        assert not (tmp_path / f"node{node}" / "out" / "summary.json").exists()
