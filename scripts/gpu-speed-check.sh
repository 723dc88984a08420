#!/usr/bin/env bash
# The GPU speed checks of issue 12, as one short script for a machine with one GPU (no hub access:
# random-initialised 1B- and 7B-class architectures). Writes JSON figures under ${OUT:-gpu-figures}.
#   bash scripts/gpu-speed-check.sh            # ~10 min on one H100/H200
# Generation: Kaizen's evaluator vs plain batched generate vs transformers' generate_batch, bf16,
# SDPA, at the evaluator's default batch (64). Training: HF Trainer + peft vs Kaizen's loop with and
# without packing, bf16, with MFU against the GPU's dense bf16 peak (PEAK_TFLOPS, 989 for H100 SXM
# and H200). Then the sharding checks that need a GPU: FSDP in bf16 mixed precision (a bf16 base
# and float32 LoRA weights in one FSDP unit, NCCL, a process group of one) against the unsharded
# loop, and a model split between the GPU and host memory (evaluation.deviceMap: auto) against the
# model on the GPU alone. Last the two-rank equivalence tests (DDP and FSDP), on gloo with CUDA
# hidden: they compare float32 runs, and NCCL would need a GPU per rank.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-gpu-figures}
PEAK=${PEAK_TFLOPS:-989}
mkdir -p "$OUT" /tmp/kaizen-models
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
for arch in llama-1b llama-7b; do
  dir=/tmp/kaizen-models/$arch
  [ -f "$dir/config.json" ] || "$PY" benchmarks/random_model.py "$arch" "$dir"
  "$PY" benchmarks/generation.py --model "$dir" --items 50 --max-new-tokens 64 \
    --no-naive --no-lm-eval --precision bf16 --attention sdpa --json "$OUT/generation-$arch.json" \
    | tee "$OUT/generation-$arch.txt"
  "$PY" benchmarks/training.py --arch "$arch" --device cuda --precision bf16 --steps 20 \
    --batch-size 16 --max-seq-length 1024 --peak-tflops "$PEAK" --json "$OUT/training-$arch.json" \
    | tee "$OUT/training-$arch.txt"
done
"$PY" -m pytest tests/trainer/test_fsdp.py tests/evaluator/test_placement.py -q -m gpu -rs 2>&1 \
  | tail -5 | tee "$OUT/sharding.txt"
CUDA_VISIBLE_DEVICES="" "$PY" -m pytest tests/trainer/test_distributed.py tests/trainer/test_fsdp.py \
  -q -m "slow and not gpu" 2>&1 | tail -3 | tee "$OUT/distributed.txt"
