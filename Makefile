# bgeft: `make demo` trains on the embedded model (CPU), `make test` runs every test and static check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
LINT_VENV ?= .venv-lint
# Extra pip arguments for torch only, e.g. a CPU-only wheel index on machines where PyPI's torch is a CUDA build.
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin
DEMO_OUT ?= outputs/demo_cpu_m3

.PHONY: help install lint-tools demo demo-train test test-suite test-fresh-install test-containers test-fast clean lock

help:
	@echo "make demo     - install into $(VENV), then the demo pipeline: raw Chinese book -> fine-tuned retriever + reranker -> report (CPU, < 10 min)"
	@echo "make demo-train - only train the BGE-M3 demo recipe (< 1 min)"
	@echo "make test     - install into $(VENV) (+ static-check tools into $(LINT_VENV)) and run the whole test suite, then make test-containers"
	@echo "make test-containers - the container suite: a private Docker engine runs the image, launcher and compose for real (root; skips with one line elsewhere)"
	@echo "make install  - only create $(VENV) and install bgeft with pinned CPU dependencies"
	@echo "make lock     - regenerate requirements/{cuda,npu}.lock (hashes from the index) after changing a pin"

$(BIN)/bgeft: pyproject.toml requirements/cpu.txt requirements/test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$$(grep -E '^torch==' requirements/cpu.txt)"
	$(BIN)/python -m pip install -q -r requirements/cpu.txt -r requirements/test.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

install: $(BIN)/bgeft

$(LINT_VENV)/bin/checkov: requirements/lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LINT_VENV)/bin/python -m pip install -q -r requirements/lint.txt
	@touch $@

lint-tools: $(LINT_VENV)/bin/checkov

lock: install
	$(BIN)/python scripts/lock_requirements.py requirements/cuda.txt requirements/npu.txt

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/bgeft pipeline run pipelines/demo_cpu.yaml
	@echo
	@echo "Raw book in; fine-tuned retriever + reranker and a before/after report out, under outputs/pipeline_demo_cpu/"
	@echo "Best round (chosen on dev) and where its models are:"
	@cat outputs/pipeline_demo_cpu/*-report/best.json
	@echo "Load the retriever with FlagEmbedding.BGEM3FlagModel(PATH) and the reranker with FlagEmbedding.FlagReranker(PATH)."

demo-train: install
	HF_HUB_OFFLINE=1 $(BIN)/bgeft train recipes/demo_cpu_m3.yaml training.output_dir=$(DEMO_OUT) --overwrite
	@echo "Fine-tuned BGE-M3-style model: $(DEMO_OUT) (load: BGEM3FlagModel('$(DEMO_OUT)', devices='cpu'))"

# `make test` runs three suites side by side (-j3; each one's output is printed whole when it ends):
#   test-suite          every test but the two below, on PYTEST_WORKERS pytest-xdist workers (--dist loadscope:
#                       a module's tests share one worker, so its module-scoped runs are made once)
#   test-fresh-install  tests/test_fresh_install.py: `pip install .` from PyPI into a new venv (mostly downloads)
#   test-containers     the container suite (a private Docker engine; apt, debootstrap and image builds when cold)
# Together they are `pytest -q` of the whole suite plus `make test-containers`; docs/benchmarks.md has the timings.
PYTEST_WORKERS ?= 2
TEST_ENV = PATH="$(CURDIR)/$(BIN):$$PATH:$(CURDIR)/$(LINT_VENV)/bin" HF_HUB_OFFLINE=1

test: install lint-tools
	$(LINT_VENV)/bin/ruff check src tests benchmarks scripts
	@$(MAKE) --no-print-directory -k -j3 --output-sync=target test-suite test-fresh-install test-containers

test-suite: install lint-tools
	$(TEST_ENV) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope --ignore=tests/test_fresh_install.py

test-fresh-install: install
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:xdist tests/test_fresh_install.py

# tests/containers: installs docker.io, debootstrap and docker-compose with apt when missing, starts a
# private dockerd (own socket and data root, removed at the end), builds the Dockerfile on a CPU base
# cached in ~/.cache/bgeft-containers, and runs the launcher, compose and the quick start in it.
test-containers: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m containers tests/containers

test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" --ignore=tests/deploy

clean:
	rm -rf $(VENV) $(LINT_VENV) build *.egg-info src/*.egg-info .pytest_cache
