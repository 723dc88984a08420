"""Precision and memory options of LoRA training: bf16, gradient checkpointing, 4-bit bases.

- `precision`: `auto` trains under bf16 autocast on GPUs that support bf16 (the frozen base
  is loaded in bf16 there, peft keeps the LoRA weights and AdamW's state in float32) and in
  float32 elsewhere; `bf16` insists on it (a configuration error where no GPU has it) and
  `fp32` turns autocast off.
- `gradient_checkpointing`: activations are recomputed in the backward pass (transformers'
  non-reentrant checkpointing; the inputs' embeddings require grad so that the frozen base
  passes gradients on to the LoRA weights). Less memory for longer sequences and larger
  models; the adapter is the same.
- `quantization: 4bit`: QLoRA, the base weights stored in 4-bit NF4 with bf16 compute through
  bitsandbytes (`quantized_load_options`), prepared with peft's
  `prepare_model_for_kbit_training`. bitsandbytes needs a CUDA GPU; where it cannot run the
  step fails at once with a configuration error saying so, before any weight is loaded.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from kaizen.api.runner import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """Whether the training step runs under bf16 autocast."""
    import torch

    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not supported:
        raise ConfigurationError(
            f"--precision bf16 needs a GPU with bf16 support; this process trains on {device} "
            "(use auto or fp32)"
        )
    if precision == "fp32":
        return False
    return supported


def enable_gradient_checkpointing(model: Any) -> None:
    """Turn on activation recomputation for a peft model whose base is frozen."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigurationError(
            f"{type(base).__name__} does not support gradient checkpointing "
            "(set training.gradientCheckpointing: false)"
        )
    # transformers 5 renames it activation checkpointing (the old name warns, and goes in v6).
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # The frozen embeddings give outputs without grad; checkpointed blocks need inputs that
    # require it for the LoRA weights inside them to get gradients.
    base.enable_input_require_grads()
    if hasattr(base, "config"):
        base.config.use_cache = False


def check_quantization(quantization: str) -> None:
    """Refuse 4-bit training, with the reason, where bitsandbytes cannot run."""
    if quantization == "none":
        return
    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            "--quantization 4bit needs bitsandbytes, which is not installed in this image "
            "(pip install 'kaizen[qlora]' in the trainer image)"
        )
    if not torch.cuda.is_available():
        raise ConfigurationError(
            "--quantization 4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels); this step "
            "has none: request resources.trainer.gpus or set training.quantization: none"
        )


def quantized_load_options(quantization: str) -> dict[str, Any]:
    """Extra `from_pretrained` arguments for the base model (none without quantization)."""
    if quantization == "none":
        return {}
    check_quantization(quantization)
    import torch
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    }


def prepare_quantized(model: Any, gradient_checkpointing: bool) -> Any:
    """peft's preparation of a k-bit base for training (norms in float32, input grads)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=gradient_checkpointing
    )
