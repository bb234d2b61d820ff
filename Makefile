# QC Workbench: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= full

.PHONY: demo test install system-deps lint bench clean-demo dashboards

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# An editable install leaves qclib uncompiled; where PYTHONDONTWRITEBYTECODE is set every
# process (pool workers, report kernels) would compile it again. 0.25 s, so every time.
install: $(STAMP)
	@$(PY) -m compileall -q qclib

system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/qc demo --scale $(SCALE)

# Two pytest workers (TEST_WORKERS=0 for one process), each given whole files
# (--dist loadfile) so that a module's full-size fixture is built once: the suite
# took 1388 s in one process, 907 s in two, on 2 cores.
TEST_WORKERS ?= 2
test: install system-deps
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check qclib tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_header_index.py

clean-demo:
	rm -rf demo-workspace

# The dashboards on the demo workspace (make demo first); PORT=8867 make dashboards.
dashboards: $(STAMP)
	@test -f demo-workspace/qc.toml || { echo "no demo-workspace yet: run 'make demo' (or 'make demo SCALE=test') first"; exit 2; }
	@$(VENV)/bin/qc --workspace demo-workspace user list --json | grep -q '"name"' || $(VENV)/bin/qc --workspace demo-workspace user add demo
	$(VENV)/bin/qc --workspace demo-workspace dashboards --port $${PORT:-8866}
