# casher: `make demo` and `make test` work on a machine with only cargo and python3.
# The Makefile makes its own virtualenv in .venv and installs what it needs there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CASHER := $(VENV)/bin/casher

.PHONY: all build venv install test test-rust test-python test-tools lint fmt demo bench difftest clean

all: build

$(VENV)/.stamp-dev: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp-dev

# `pip install .` builds the pyo3 module and the native `casher` binary into one wheel.
install: venv
	$(PIP) install --quiet --no-deps --force-reinstall .

build: install

test: install test-tools test-rust lint test-python

# strace is the ground truth the tracer is compared with (Debian's package).
test-tools:
	@command -v strace >/dev/null 2>&1 || { \
		echo "installing strace from Debian's packages"; \
		(apt-get update -qq && apt-get install -y -qq strace) >/dev/null 2>&1 || \
		sudo sh -c 'apt-get update -qq && apt-get install -y -qq strace' >/dev/null 2>&1 || \
		{ echo "error: strace is needed by the tests; install it (apt-get install strace)" >&2; exit 1; }; }

test-rust:
	cargo test --workspace --locked

test-python: install
	$(PY) -m pytest -q tests

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

$(VENV)/.stamp-bench: requirements-bench.txt $(VENV)/.stamp-dev
	$(PIP) install --quiet -r requirements-bench.txt
	touch $@

bench: install $(VENV)/.stamp-bench
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/run.py
	$(MAKE) difftest

# `casher run` against plain runs, random seed (DIFFTEST_SEED=S replays one).
difftest: install
	$(PY) bench/difftest.py --iterations $${DIFFTEST_ITERATIONS:-1000}

clean:
	rm -rf $(VENV) build python/casher/_native*.so python/*.egg-info
	cargo clean
