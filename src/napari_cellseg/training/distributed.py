"""torchrun / DistributedDataParallel helpers.

``napari-cellseg train`` runs unchanged under ``torchrun --nproc_per_node=N``
(and multi-node ``torchrun --nnodes ... --rdzv-endpoint ...``): torchrun sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the process group (``nccl`` on
CUDA, ``gloo`` on CPU). Without those variables it returns a single-process
context and nothing distributed is touched.

Rules the engine follows: every rank trains on its own, disjoint shard of each
global batch; gradients are averaged by DDP; only rank 0 evaluates and writes
checkpoints (every rank yields reports; the CLI prints rank 0's).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DDP_TIMEOUT_MIN = 60  # how long a rank waits at a collective (NCCL's default is 10 min)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> DistributedContext:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (as torchrun sets them) without joining."""

    def read(name: str, default: int) -> int:
        value = os.environ.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"environment variable {name}={value!r} is not an integer") from None

    world = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    local = read("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent (need 0 <= RANK < WORLD_SIZE)")
    return DistributedContext(rank=rank, world_size=world, local_rank=local)


def init_distributed(device_type: str) -> DistributedContext:
    """Join the process group described by the environment, if any.

    Parameters
    ----------
    device_type : str
        ``"cuda"`` selects the ``nccl`` backend, anything else ``gloo``.

    Returns
    -------
    DistributedContext
        ``world_size == 1`` when not launched by torchrun.
    """
    context = env_context()
    if not context.enabled:
        return context
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        # Rank 0 scores the dev images (watershed on the CPU) while the others wait at a barrier:
        # NCCL's default 10 min would end a run with a large dev set.
        dist.init_process_group(
            backend=backend, rank=context.rank, world_size=context.world_size,
            timeout=datetime.timedelta(minutes=DDP_TIMEOUT_MIN),
        )  # fmt: skip
        if backend == "gloo":
            # Every rank joined before any may leave: a rank that refused its settings at once
            # closed the connections another was still opening ("Connection closed by peer").
            dist.barrier()
    return DistributedContext(context.rank, context.world_size, context.local_rank, backend)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group joined by :func:`init_distributed`."""
    if not context.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, context: DistributedContext, device: torch.device):
    """Wrap ``model`` in DistributedDataParallel when running distributed.

    On CUDA, BatchNorm layers become SyncBatchNorm, so that one DDP step equals
    a single-process step on the union of the ranks' batches. PyTorch's
    SyncBatchNorm does not run on the CPU: there (gloo), each rank normalises
    with its own batch statistics, and DDP broadcasts rank 0's running
    statistics; layers in eval mode (frozen stages) are unaffected.
    """
    if not context.enabled:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def all_reduce_sum(value: float, context: DistributedContext, device: torch.device) -> float:
    """Sum a Python number over ranks (identity when not distributed)."""
    if not context.enabled:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def all_reduce_tensor_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """A tensor summed over ranks (a new tensor; the same values when not distributed)."""
    if not context.enabled:
        return tensor.clone()
    import torch.distributed as dist

    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def broadcast_float(value: float, context: DistributedContext, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (identity when not distributed).

    A tensor broadcast, not ``broadcast_object_list``: nothing is pickled.
    """
    if not context.enabled:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        import torch.distributed as dist

        dist.barrier()
