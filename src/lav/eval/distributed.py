"""One evaluation over several processes: ``torchrun`` / ``accelerate launch`` ranks, one shard each.

Each rank runs its shard (`engine.shard_of`) on its own device into ``<out>/shards/rank-I/``
(resumable like any run), waits at a barrier, and rank 0 merges the parts into ``<out>``. The
barrier is torch.distributed with gloo (CPU tensors, so it works beside CUDA and on CPU-only
nodes, one node or several).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``rank`` of ``world``, ``local_rank`` on its node."""

    rank: int
    world: int
    local_rank: int


def launch_env() -> Launch | None:
    """The launch this process is part of (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` as set by
    torchrun and accelerate), or None for a plain single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if world <= 1:
        return None
    return Launch(rank, world, local)


def device_for(launch: Launch) -> str:
    """``cuda:LOCAL_RANK`` when CUDA is there, else ``cpu``."""
    import torch

    return f"cuda:{launch.local_rank}" if torch.cuda.is_available() else "cpu"


#: Ranks wait for the slowest one at the barrier: long benchmarks take hours, not gloo's 30 minutes.
BARRIER_TIMEOUT = timedelta(hours=48)


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
