"""One evaluation over several processes: ``torchrun`` / ``accelerate launch`` ranks, one shard each.

Each rank lists its part in ``<out>``'s manifest (`engine.claim_shard`), waits at a barrier, checks
that it sees every other rank's listing (``--out`` must be one folder all nodes share), runs its
shard (`engine.shard_of`) on its own device into ``<out>/shards/rank-I/`` (resumable like any run),
waits at a second barrier, and rank 0 merges the parts into ``<out>``. The barrier is
torch.distributed with gloo (CPU tensors, so it works beside CUDA and on CPU-only nodes, one node or
several).

What the launchers set (read from torch 2.14 ``torch.distributed.run`` and accelerate 1.16
``commands/launch.py``): torchrun and ``accelerate launch --multi_gpu`` (which calls torchrun's
elastic launcher, on a CPU-only machine too) set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``MASTER_ADDR``/``MASTER_PORT``. ``accelerate launch --cpu`` starts *one* process whatever
``--num_processes`` says (several CPU processes need its ``--mpirun_hostfile``, whose ranks are in
MPI's variables): `launch_env` refuses both rather than run every sample in each process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..errors import InputError, LavError

#: MPI launchers' world size (Open MPI, MPICH / Intel MPI, MVAPICH), as accelerate reads them.
_MPI_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
#: Torchrun's launcher and accelerate's, in messages.
LAUNCHERS = "torchrun or accelerate launch --multi_gpu"


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``rank`` of ``world``, ``local_rank`` on its node."""

    rank: int
    world: int
    local_rank: int


def launch_env() -> Launch | None:
    """The launch this process is part of (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` as set by
    torchrun and ``accelerate launch --multi_gpu``), or None for a plain single process.

    Refuses (`InputError`) a launch that started processes without those variables: under mpirun
    each process would run every sample, and ``accelerate launch --cpu --num_processes N`` starts one.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if "WORLD_SIZE" not in os.environ:
        _refuse_unread_launch()
    if world <= 1:
        return None
    return Launch(rank, world, local)


def _refuse_unread_launch() -> None:
    fix = (
        f"start the ranks with {LAUNCHERS} (each rank then runs on the CPU where there is no GPU), "
        "or run lav eval alone for one process"
    )
    for name in _MPI_SIZE:
        if os.environ.get(name, "1").strip() not in ("", "0", "1"):
            raise InputError(
                f"this process is one of {os.environ[name]} started by mpirun ({name}), but lav eval reads its "
                f"rank from RANK/WORLD_SIZE/LOCAL_RANK, which mpirun does not set; {fix}"
            )
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1") and "MASTER_ADDR" in os.environ:
        # accelerate sets MASTER_ADDR only for --num_processes > 1 (or several machines).
        raise InputError(f"accelerate launch --cpu started one process, not --num_processes of them; {fix}")


def device_for(launch: Launch, asked: str = "auto") -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` for ``auto`` (``cpu`` without CUDA), for
    ``cuda`` (or ``xpu``...) with no index that type's ``LOCAL_RANK`` device, and ``cpu`` or ``mps``
    as asked. A device with an index other than ``LOCAL_RANK`` is refused (`InputError`): every
    rank would load its copy of the model there, beside the device it was given."""
    import torch

    if asked == "auto":
        return f"cuda:{launch.local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(asked)
    except (RuntimeError, ValueError):
        return asked  # `lav.load` names an unknown device with the list of known ones
    if dev.type in ("cpu", "mps"):
        return asked
    if dev.index is None:
        return f"{dev.type}:{launch.local_rank}"
    if dev.index != launch.local_rank:
        raise InputError(
            f"--device {asked} on rank {launch.rank}, whose device is {dev.type}:{launch.local_rank} "
            f"(LOCAL_RANK={launch.local_rank}): under {LAUNCHERS} each rank runs on {dev.type}:LOCAL_RANK; "
            f"leave --device out (or pass {dev.type} or cpu), and pick the GPUs with CUDA_VISIBLE_DEVICES"
        )
    return asked


#: Ranks wait for the slowest one at the barrier: long benchmarks take hours, not gloo's 30 minutes.
BARRIER_TIMEOUT = timedelta(hours=48)
#: Seconds a rank waits for files another node wrote under ``--out`` to show up (network file
#: systems cache directory listings, NFS up to ``acdirmax`` = 60 s by default); ``LAV_SHARED_WAIT``
#: sets another value.
SHARED_WAIT_S = 120.0


def shared_wait() -> float:
    """`SHARED_WAIT_S`, or the seconds given in ``LAV_SHARED_WAIT``."""
    text = os.environ.get("LAV_SHARED_WAIT")
    if text is None:
        return SHARED_WAIT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"LAV_SHARED_WAIT must be a number of seconds >= 0, got {text!r}")
    return value


def barrier() -> None:
    """Wait until every rank gets here (starting the gloo process group on first use)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    dist.barrier()


def finish() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _not_yet(missing: Callable[[], list[int]], seconds: float) -> list[int]:
    """Poll ``missing()`` until it is empty or ``seconds`` have passed; what is still missing."""
    deadline = time.monotonic() + seconds
    while True:
        left = missing()
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _storage_fix(out: Path) -> str:
    return (
        f"--out must be one folder every node sees at the same path (shared storage: NFS, Lustre, a "
        f"mounted bucket), since rank 0 merges every rank's part from {out}/shards"
    )


def check_shared(out: str | Path, launch: Launch, wait: float | None = None) -> None:
    """Refuse (`LavError`) an ``out`` that is not one folder for all ranks, before any work: after
    every rank listed its part there (`engine.claim_shard`) and passed a barrier, each rank must see
    every part listed, within ``wait`` seconds (`shared_wait`)."""
    from ..livefolder import listed_outputs
    from .layout import SHARDS_DIR

    out = Path(out)
    parts = [f"{SHARDS_DIR}/rank-{i}" for i in range(launch.world)]

    def missing() -> list[int]:
        listed = set(listed_outputs(out))
        return [i for i, p in enumerate(parts) if p not in listed]

    unseen = _not_yet(missing, shared_wait() if wait is None else wait)
    if unseen:
        raise LavError(
            f"rank {launch.rank} does not see rank {unseen[0]}'s part listed in {out.resolve()} "
            f"({len(unseen)} of {launch.world} ranks unseen): {_storage_fix(out)}"
        )


def wait_for_parts(out: str | Path, world: int, wait: float | None = None) -> None:
    """On rank 0 after the last barrier: wait until every part's ``summary.json`` shows up (a network
    file system may show another node's file late), refusing (`LavError`) after ``wait`` seconds."""
    from .layout import shard_folder
    from .log import SUMMARY_FILE

    out = Path(out)
    seconds = shared_wait() if wait is None else wait
    unseen = _not_yet(
        lambda: [i for i in range(world) if not (shard_folder(out, i) / SUMMARY_FILE).is_file()], seconds
    )
    if unseen:
        raise LavError(
            f"every rank finished, but rank 0 does not see {shard_folder(out, unseen[0]) / SUMMARY_FILE} "
            f"({len(unseen)} of {world} parts unseen): {_storage_fix(out)}; each part stays where its "
            f"rank wrote it (shards/rank-I under --out on that node), or raise LAV_SHARED_WAIT (now {seconds:g} s) "
            "if the storage is shared but slow to show files"
        )
