"""Write a randomly initialised Llama-style model of a size class, with the bundled tokenizer.

    python benchmarks/random_model.py llama-7b /tmp/llama-7b-random

For speed and memory measurements on a machine that cannot download weights (the GPU machine):
the architecture decides the cost, not the weights. Written in bf16 (a 7B-class model takes
about 14 GB of disk). The classes are those of `benchmarks/training.py --arch`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from training import ARCHS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("arch", choices=sorted(ARCHS))
    parser.add_argument("output", type=Path)
    parser.add_argument("--tokenizer", default="bundled:smollm2-135m-instruct")
    args = parser.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kaizen.runtime.models import load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer)
    hidden, layers, heads, kv, ffn = ARCHS[args.arch]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=ffn,
        max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model: Any = LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}: {params / 1e9:.2f} B parameters written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
