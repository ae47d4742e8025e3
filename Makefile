# fedenv set-up. Every target is idempotent: the virtual environment is built once and rebuilt only
# when pyproject.toml or constraints.txt change (the stamp file records that).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Caches stay inside the project's ignored folders.
export HF_HOME := $(CURDIR)/.cache/hf
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/inductor
export FEDENV_CACHE := $(CURDIR)/.cache/fedenv
export MPLCONFIGDIR := $(CURDIR)/.cache/mpl
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: setup train test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: a CPU wheel where one is provided locally, the registry's (CUDA) build elsewhere.
	$(BIN)/python -m pip install -q torch==2.13.0
	# The RL ecosystem's extras too (tests/test_rllib.py, test_torchrl.py, test_supersuit.py,
	# evaluate.py --backend ray): ~20 s and ~700 MB more; torch stays pinned (PIP_CONSTRAINT).
	$(BIN)/python -m pip install -q -e '.[dev,eth,plots,analysis,rllib,torchrl,supersuit]'
	touch $(STAMP)

train: setup
	$(BIN)/python train_agents.py

demo: setup
	$(BIN)/python -m fedenv.engine --orgs 4 --rounds 5

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/round.py
	$(BIN)/python benchmarks/chains.py
	$(BIN)/python benchmarks/env_step.py

clean:
	rm -rf $(VENV) .cache
