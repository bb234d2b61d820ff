# QC Workbench: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= full

.PHONY: demo test install system-deps lint bench clean-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/qc demo --scale $(SCALE)

test: $(STAMP) system-deps
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check qclib tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_header_index.py

clean-demo:
	rm -rf demo-workspace
