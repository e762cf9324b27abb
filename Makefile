# Two commands do all the set-up: `make demo` and `make test` create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Development and CI machines keep a CPU build of torch on disk; the constraints file makes pip
# take it instead of a multi-GB CUDA build. Users installing droptune with pip are not bound by it:
# `make TORCH_CONSTRAINTS= install` drops it.
TORCH_CONSTRAINTS ?= -c constraints-cpu.txt

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_CONSTRAINTS) -e '.[dev,postgres]'
	touch $@

demo: install
	$(BIN)/droptune tune studies/digits_cnn.yaml --n-trials 12

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --doctest-modules droptune tests

lint: install
	$(BIN)/ruff check droptune tests benchmarks
	$(BIN)/mypy droptune

clean:
	rm -rf $(VENV) studies/*.db mlruns/mlflow.db mlruns/artifacts tests/artifacts
