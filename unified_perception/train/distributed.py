"""One code path for one process and many: torch.distributed under ``torchrun``.

``torchrun --nproc_per_node N -m unified_perception.cli train ...`` sets RANK / WORLD_SIZE /
LOCAL_RANK; :func:`init_distributed` then joins the process group (gloo on CPU, nccl on CUDA) and
the trainer wraps the model in DistributedDataParallel. Without those variables everything runs in
one process and these helpers are no-ops. Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(prefer_cuda: bool = True) -> DistributedContext:
    """Join the process group when launched by torchrun; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = prefer_cuda and torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistributedContext(rank, world, local, device)


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistributedContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_flag(ctx: DistributedContext, value: bool) -> bool:
    """Rank 0's ``value`` on every rank (e.g. 'stop now')."""
    if not ctx.enabled:
        return value
    flag = torch.tensor([1.0 if value else 0.0], device=ctx.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item() > 0.5)


def state_digest(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over the names and exact bytes of ``named_tensors`` (e.g. ``named_parameters()``)."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def gather_digests(ctx: DistributedContext, digest: str) -> list[str]:
    """Every rank's ``digest`` in rank order (``[digest]`` in one process)."""
    if not ctx.enabled:
        return [digest]
    out: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(out, digest)
    return [str(d) for d in out]
