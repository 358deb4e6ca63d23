"""`lav.eval.distributed`: which launch a process is in (as torchrun and accelerate set the variables),
the device of a rank (a --device that is not the rank's is refused, not replaced), and the check that
every rank writes into one shared --out (two folders stand for two nodes' local disks)."""

from __future__ import annotations

import pytest

from lav import InputError, LavError
from lav.eval import distributed
from lav.eval.distributed import Launch
from lav.eval.engine import claim_shard

_LAUNCH_VARS = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "ACCELERATE_USE_CPU",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
)


@pytest.fixture
def env(monkeypatch):
    for name in _LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_torchrun_variables_give_the_rank(env):
    env.setenv("WORLD_SIZE", "4")
    env.setenv("RANK", "3")
    env.setenv("LOCAL_RANK", "1")
    assert distributed.launch_env() == Launch(3, 4, 1)


def test_a_plain_process_is_no_launch(env):
    assert distributed.launch_env() is None
    env.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1
    assert distributed.launch_env() is None


def test_accelerate_cpu_launch_of_several_processes_is_refused(env):
    # What `accelerate launch --cpu --num_processes 2` (accelerate 1.16) hands its one process.
    env.setenv("ACCELERATE_USE_CPU", "True")
    env.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(InputError, match="accelerate launch --cpu started one process.*--multi_gpu"):
        distributed.launch_env()


def test_mpirun_ranks_without_torch_variables_are_refused(env):
    env.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(InputError, match="started by mpirun.*RANK/WORLD_SIZE/LOCAL_RANK"):
        distributed.launch_env()


@pytest.mark.parametrize(
    ("asked", "cuda", "device"),
    [
        ("auto", True, "cuda:1"),
        ("auto", False, "cpu"),
        ("cpu", True, "cpu"),  # every rank on the CPU, as asked (not replaced by cuda:1)
        ("cuda", True, "cuda:1"),  # "the GPU": this rank's
        ("cuda:1", True, "cuda:1"),
    ],
)
def test_rank_device(monkeypatch, asked, cuda, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert distributed.device_for(Launch(rank=1, world=2, local_rank=1), asked) == device


def test_a_device_other_than_the_ranks_is_refused():
    with pytest.raises(InputError) as err:
        distributed.device_for(Launch(rank=1, world=2, local_rank=1), "cuda:0")
    message = str(err.value)
    assert "--device cuda:0 on rank 1, whose device is cuda:1 (LOCAL_RANK=1)" in message
    assert "CUDA_VISIBLE_DEVICES" in message and "\n" not in message


def test_ranks_that_share_out_pass_the_check(tmp_path):
    for rank in range(2):
        claim_shard(tmp_path / "out", rank)
    for rank in range(2):
        distributed.check_shared(tmp_path / "out", Launch(rank, 2, rank), wait=0)


def test_ranks_on_separate_disks_are_refused_with_the_fix(tmp_path):
    # Two nodes, each with --out on its own disk: each lists only its own part.
    claim_shard(tmp_path / "node0" / "out", 0)
    claim_shard(tmp_path / "node1" / "out", 1)
    with pytest.raises(LavError, match=r"rank 0 does not see rank 1's part .*shared storage") as err:
        distributed.check_shared(tmp_path / "node0" / "out", Launch(0, 2, 0), wait=0.2)
    assert "\n" not in str(err.value)
    with pytest.raises(LavError, match=r"rank 1 does not see rank 0's part"):
        distributed.check_shared(tmp_path / "node1" / "out", Launch(1, 2, 0), wait=0)


def test_a_part_that_never_shows_up_stops_the_merge_after_the_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("LAV_SHARED_WAIT", "0.3")
    with pytest.raises(
        LavError, match=r"rank 0 does not see .*rank-0.*summary.json .*LAV_SHARED_WAIT \(now 0.3 s\)"
    ):
        distributed.wait_for_parts(tmp_path / "out", 2)


def test_shared_wait_is_checked(monkeypatch):
    monkeypatch.setenv("LAV_SHARED_WAIT", "soon")
    with pytest.raises(InputError, match="LAV_SHARED_WAIT must be a number of seconds"):
        distributed.shared_wait()
