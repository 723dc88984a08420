"""Fully sharded LoRA training (FSDP2) for models that do not fit on one GPU.

With `--parallelism fsdp` under torchrun, the base model is not replicated: every rank holds
1/world of each weight and all-gathers a transformer block's weights just before it runs
(`torch.distributed.fsdp.fully_shard`, per-parameter sharding on DTensors). The wrapping
policy is transformers' own: each module whose class the model lists in `_no_split_modules`
(the decoder layers) is one FSDP unit, and the root (embeddings, final norm, output head)
another. FSDP2 shards each parameter separately, so the frozen base weights and the LoRA
weights inside one block share a unit without FSDP1's `use_orig_params` workaround; only the
LoRA weights get gradients, which FSDP reduce-scatters.

- **Loading**: rank 0 reads the weights into CPU memory; the other ranks build the model on
  the meta device (no memory). After sharding, rank 0's weights are broadcast one tensor at
  a time into every rank's shards (`set_model_state_dict(..., broadcast_from_rank0=True)`),
  and the buffers that are not in the state dict (rotary frequencies) are broadcast too. So
  no rank ever holds the whole model on a GPU, and only rank 0 holds it in host memory.
- **Precision**: on GPUs with bf16, FSDP's mixed precision all-gathers the weights in bf16
  and reduces gradients in float32; the sharded LoRA weights and AdamW's state stay float32.
- **Gradients** are summed over the ranks, not averaged (`set_gradient_divide_factor(1.0)`
  with sum-only collectives): each rank's loss is already weighted by its share of the
  batch's tokens (`distributed.Parallel.share`), exactly as in data-parallel training, so the
  adapter is the one a single process trains (`tests/trainer/test_fsdp.py`). Sum-only
  collectives are also what lets FSDP run on gloo (CPU): gloo has no `PREMUL_SUM`, which FSDP
  uses by default to average.
- **Saving**: the LoRA weights (the only trainable ones) are gathered into full tensors
  (`DTensor.full_tensor`, a collective on every rank) and rank 0 writes an ordinary peft
  adapter; the optimiser state of a checkpoint is gathered likewise
  (`get_optimizer_state_dict(full_state_dict=True)`), and a resume scatters both back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api.runner import ConfigurationError
from kaizen.trainer.distributed import Parallel

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch

#: `--parallelism` values: a replicated base with summed LoRA gradients, or a sharded base.
STRATEGIES = ("ddp", "fsdp")


def block_classes(model: Any) -> set[type]:
    """The module classes that become one FSDP unit each: those transformers keeps whole
    when it splits a model over devices (`_no_split_modules`, the decoder layers)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    if not names:
        raise ConfigurationError(
            f"{type(base).__name__} names no transformer blocks (_no_split_modules) for FSDP "
            "to shard; use training.parallelism: ddp"
        )
    found = {type(module) for module in base.modules() if type(module).__name__ in names}
    if not found:
        raise ConfigurationError(
            f"{type(base).__name__} has none of its blocks {sorted(names)} to shard with FSDP"
        )
    return found


def blocks(model: Any) -> list[Any]:
    """The modules of `model` that are FSDP units below the root, in order."""
    classes = tuple(block_classes(model))
    return [module for module in model.modules() if isinstance(module, classes)]


def group_ready() -> bool:
    """Whether this process has joined a process group (torchrun's ranks have)."""
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def device_for(parallel: Parallel) -> torch.device:
    """The device of this rank's shards: its GPU, or the CPU (gloo)."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", parallel.local_rank)
    return torch.device("cpu")


def base_dtype() -> torch.dtype:
    """The base weights' dtype: bf16 where training runs on GPUs (as `load_model` does for a
    GPU), float32 on CPUs."""
    import torch

    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def load_base(ref: str, adapters: Sequence[str], revision: str | None, parallel: Parallel) -> Any:
    """The base model for sharding: its weights (with `adapters` merged in) in rank 0's CPU
    memory, an empty model of the same configuration on the meta device on the other ranks
    (`shard` fills their shards from rank 0)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from kaizen.runtime.models import load_model, resolve_model

    dtype = base_dtype()
    if parallel.is_main:
        return load_model(ref, adapters, revision=revision, device="cpu", dtype=dtype)
    config = AutoConfig.from_pretrained(resolve_model(ref), revision=revision)
    with torch.device("meta"):
        model: Any = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    return model


def shard(model: Any, parallel: Parallel, *, bf16: bool, full_state: dict[str, Any] | None) -> Any:
    """Shard `model` (a peft model) over the ranks and fill every rank's shards from rank 0.

    `full_state` is rank 0's `state_dict()` taken before sharding (None on the other ranks,
    whose model is on the meta device).
    """
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    device = device_for(parallel)
    mesh = init_device_mesh(device.type, (parallel.world_size,))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    # Buffers outside the state dict (rotary inverse frequencies) are rank 0's to give.
    buffers = {name: buffer for name, buffer in model.named_buffers()}
    units = blocks(model)
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    if not parallel.is_main:
        model.to_empty(device=device)
    set_model_state_dict(
        model,
        full_state if parallel.is_main and full_state is not None else {},
        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False),
    )
    for name, buffer in model.named_buffers():
        if parallel.is_main:
            buffer.copy_(buffers[name].to(device))
        dist.broadcast(buffer, src=0)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            # Summed, not averaged: the losses are weighted by each rank's share of the batch.
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def trainable_state(model: Any, parallel: Parallel) -> dict[str, torch.Tensor]:
    """Full (unsharded) CPU copies of the trainable weights by name; every rank must call it
    (the gathers are collectives), and every rank gets them."""
    from torch.distributed.tensor import DTensor

    state = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        full = param.full_tensor() if isinstance(param, DTensor) else param
        state[name] = full.detach().to("cpu", copy=True)
    return state


def save_adapter(model: Any, directory: Path, parallel: Parallel) -> None:
    """Write `model`'s adapter to `directory` as an ordinary peft adapter (rank 0 writes;
    every rank must call it)."""
    state = trainable_state(model, parallel)
    if parallel.is_main:
        model.save_pretrained(str(directory), state_dict=state)


def load_adapter(model: Any, saved: dict[str, torch.Tensor], adapter_name: str = "default") -> None:
    """Scatter a saved peft adapter's full tensors into this rank's LoRA shards."""
    params = dict(model.named_parameters())
    # peft saves `...lora_A.weight` for the parameter `...lora_A.<adapter>.weight`.
    by_saved_key = {
        name.replace(f".{adapter_name}", ""): name for name, p in params.items() if p.requires_grad
    }
    missing = sorted(set(by_saved_key) - set(saved))
    if missing:
        raise ValueError(f"the saved adapter lacks {len(missing)} weights, e.g. {missing[0]}")
    for key, name in by_saved_key.items():
        _copy_into(params[name], saved[key])


def _copy_into(param: Any, full: torch.Tensor) -> None:
    import torch
    from torch.distributed.tensor import DTensor, distribute_tensor

    with torch.no_grad():
        full = full.to(dtype=param.dtype)
        if isinstance(param, DTensor):
            # Every rank holds the full tensor (it read the file): no communication.
            local = distribute_tensor(
                full.to(param.device_mesh.device_type),
                param.device_mesh,
                param.placements,
                src_data_rank=None,
            )
            param.to_local().copy_(local.to_local())
        else:
            param.copy_(full)


def optimizer_state(model: Any, optimizer: Any) -> dict[str, Any]:
    """The optimiser's state with full tensors keyed by parameter name (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return dict(
        get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    )


def load_optimizer_state(model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Scatter a full optimiser state (every rank read the same file) into the shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=True)
    )
