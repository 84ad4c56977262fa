# One-command set-up and test. Everything installs into a repo-local .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install test bench ablation clean

install: $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[test]"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

test:
	$(BIN)/python -m pytest

bench:
	$(BIN)/python benchmarks/bench_imresize.py
	$(BIN)/python benchmarks/bench_generator.py
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_training.py

ablation:
	$(BIN)/python -m sftgan_lit.experiments.prior_ablation --out outputs/ablation

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
