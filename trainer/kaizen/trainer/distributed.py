"""Data-parallel LoRA across processes: torchrun's ranks share each global batch.

A train step launched under torchrun (`python -m kaizen.trainer.launch ... -m kaizen.trainer
train ...`, torchrun keeping the ranks' exit code, as the operator does for a pod with several
GPUs and for a TrainJob) runs one process per device. Every rank loads the same base model,
builds the same examples and attaches the same (seeded) LoRA weights; at each step it takes its
share of the global batch (`rows[rank::world]`), and the gradients of the LoRA weights are
summed over the ranks. The loss of each rank is weighted so that the sum is exactly the loss one
process would compute on the whole batch: the cross-entropy is a mean over the batch's answer
tokens, so a rank's mean counts `n_rank / n_global` of it (likewise the distillation KL over its
positions). Hence the adapter does not depend on the number of processes, up to floating-point
summation order (`tests/trainer/test_distributed.py` checks two gloo ranks against one process).

Only rank 0 writes: checkpoints, the adapter, `training.json`, the data card, the tracking run
and the step summary. The other ranks compute and stay silent. LoRA weights are small, so
their gradients go in one flat all-reduce per step; the base model is replicated, which fits
whenever one device holds it (in bf16, or in 4 bits with `--quantization 4bit`).

NCCL is used on GPUs and gloo on CPU (`KAIZEN_DIST_BACKEND` overrides).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch

T = TypeVar("T")
BACKEND_ENV = "KAIZEN_DIST_BACKEND"


@dataclass(frozen=True)
class Parallel:
    """This process's place among the training processes (world size 1: a plain run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, rows: Sequence[T]) -> list[T]:
        """This rank's share of a global batch: every `world_size`-th row from `rank` on."""
        return list(rows[self.rank :: self.world_size])

    def check_batch(self, batch_size: int) -> None:
        """Every rank needs at least one example of each global batch."""
        from kaizen.api.runner import ConfigurationError

        if batch_size < self.world_size:
            raise ConfigurationError(
                f"batch size {batch_size} is smaller than the {self.world_size} training "
                "processes (one per GPU and node): raise training.batchSize to at least that"
            )

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over the ranks (the value itself in a plain run)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def share(self, local: int | float, device: torch.device) -> float:
        """This rank's share of a count summed over the ranks (1.0 in a plain run)."""
        if not self.distributed:
            return 1.0
        import torch

        total = float(self.sum(torch.tensor(float(local), device=device)).item())
        return float(local) / total if total > 0 else 0.0

    def reduce_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Sum the gradients of `parameters` over the ranks, in one flat all-reduce."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for param, grad in zip(parameters, grads, strict=True):
            count = grad.numel()
            param.grad = flat[offset : offset + count].view_as(param).to(param.dtype)
            offset += count

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it may clean up files), then the others."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = Parallel()


def from_environment(environ: dict[str, str] | None = None) -> Parallel:
    """The process's rank from torchrun's variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise ValueError(f"torchrun variables RANK/WORLD_SIZE/LOCAL_RANK: {error}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return Parallel(rank=rank, world_size=world, local_rank=local)


@contextlib.contextmanager
def process_group(parallel: Parallel) -> Iterator[Parallel]:
    """Join the process group for the block (nothing to do in a plain run).

    Each rank uses the GPU of its local rank; NCCL on GPUs, gloo otherwise.
    """
    if not parallel.distributed:
        yield parallel
        return
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(parallel.local_rank)
    backend = os.environ.get(BACKEND_ENV) or ("nccl" if cuda else "gloo")
    dist.init_process_group(backend=backend)
    try:
        yield parallel
        # Every rank done with its collectives before any tears the group down: a rank that
        # destroys it while a peer still waits on it can abort the peer at exit (gloo:
        # "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
