# One command per developer action. Every target sets up .venv itself, so a clean clone needs
# nothing installed by hand beyond python3 (3.11+) and make.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
# The machine's pip configuration names index folders that do not exist for every package;
# pip warns about each one. They are harmless, so keep them out of the way of real messages.
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

FOLDER ?= sample_runs
PORT ?= 8501

INSTALLED := $(VENV)/.installed
TEST_TOOLS := $(VENV)/.test-tools
# The browser test, the page benchmark and the README screenshots drive Debian's Chromium through
# Playwright (installed with the dev extra). Playwright's own browser download does not work on
# our machines, and CI starts clean, so the browser comes from apt when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help venv app test check lint typecheck pytest bench soak sample-runs screenshots clean

help:
	@echo "make app          set up .venv and open the app on $(FOLDER)/"
	@echo "make test         set up .venv and run ruff, mypy and the whole test suite"
	@echo "make check        ruff + mypy only"
	@echo "make bench        benchmarks against the published reference code"
	@echo "make soak         the hostile-input tests with many fresh generated examples"
	@echo "make sample-runs  regenerate sample_runs/ deterministically"
	@echo "make screenshots  README screenshots of every page into docs/images/"

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, from the pinned CPU build, so nothing later can pull another one.
	$(PIP) "torch==2.13.0" $(QUIET_PIP)
	$(PIP) -e ".[dev]" $(QUIET_PIP)
	touch $@

# Test-only reference packages. They are installed without their dependencies because their
# metadata pins old versions of torch and friends; the parts we compare against need only
# torch and numpy.
$(TEST_TOOLS): $(INSTALLED) requirements-test-nodeps.txt
	$(PIP) --no-deps -r requirements-test-nodeps.txt $(QUIET_PIP)
	# The optional extras, so that the tests exercise them.
	$(PIP) -e ".[dev,hf,ray,lightning]" $(QUIET_PIP)
	touch $@

# A file target with no prerequisites: make runs this only when the browser is not there.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium >/dev/null
	test -x $@

venv: $(INSTALLED)

# On the sample runs the app opens with their metrics computed: incremental, so the first start
# computes them (about a minute) and later starts find them up to date in a fraction of a second.
app: $(INSTALLED)
ifeq ($(FOLDER),sample_runs)
	$(BIN)/dyntools compute sample_runs --activations
endif
	$(BIN)/dyntools app $(FOLDER) --port $(PORT)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

check: lint typecheck

pytest: $(TEST_TOOLS) $(CHROMIUM)
	$(BIN)/pytest

test: check pytest

bench: $(TEST_TOOLS) $(CHROMIUM)
	$(PY) -m bench

# The hostile-input tests with 2,000 fresh generated examples each (about half an hour).
soak: $(TEST_TOOLS)
	DYNTOOLS_SOAK_EXAMPLES=2000 $(BIN)/pytest tests/test_fuzz.py tests/test_adversarial.py

sample-runs: $(INSTALLED)
	$(PY) scripts/make_sample_runs.py --out sample_runs

screenshots: $(INSTALLED) $(CHROMIUM)
	$(PY) scripts/readme_screenshots.py --out docs/images

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts
