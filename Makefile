# Only Python 3.11, git and make are assumed; everything else is installed here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv install check test lint lint-ruff lint-mypy lint-imports test-all test-fast demo bench bench-peers clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The linters are independent: they run side by side (-j), each one's output printed whole when it ends (-O),
# and every one runs to the end even when another fails (-k), so one `make lint` names every failure.
# One mypy run: pyproject.toml's [tool.mypy] is strict, and its overrides relax only tests.* and bench.*.
LINT_STEPS := lint-ruff lint-mypy lint-imports
SIDE_BY_SIDE = $(MAKE) --no-print-directory -j -k -O

lint: $(STAMP)
	$(SIDE_BY_SIDE) $(LINT_STEPS)

lint-ruff: $(STAMP)
	$(BIN)/ruff check reconciler tests bench

lint-mypy: $(STAMP)
	$(BIN)/mypy reconciler tests bench

lint-imports: $(STAMP)
	$(BIN)/lint-imports

# Byte-compiled once up front: where PYTHONDONTWRITEBYTECODE is set (as on some CI and sandbox images) every
# `pixel` the tests and the benchmark start would otherwise compile all of reconciler again (and every
# `python -m bench` or tests/ child its modules).
COMPILE = $(BIN)/python -m compileall -q reconciler bench tests

# Tests run on every core (pytest-xdist; each worker starts its own SeaweedFS). A module's tests stay on one
# worker (loadfile), so a module-scoped fixture such as test_wheel's built wheel is made once, not per worker.
# One worker more than cores: the suite still waits on SeaweedFS, child processes and fsyncs for about a third
# of its time (2 workers kept 1.44 of 2 cores busy), and a third worker fills it. A fresh clone's `make test`
# on a quiet 2-core machine, same commit: 376 s with -n 2, 338 s with -n 3 (pytest 338 -> 301 s, 5 % more CPU).
# (On a machine loaded by other work it did not pay: wall ratios 0.98 and 1.06 on a subset.) WORKERS=N overrides.
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) + 1 )))
# PYTHONDONTWRITEBYTECODE unset for the run: else each worker rewrites and compiles every test module's asserts
# again on every run (pytest keeps them only as bytecode), ~7 CPU-s per worker; a read-only tree just skips it.
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n $(WORKERS) --dist loadfile

# Lint overlaps the tests: the suite waits on SeaweedFS, child processes and fsyncs more than it computes, and
# mypy fills that idle core. Either failing fails the target; each one's output is printed whole.
test: $(STAMP)
	$(SIDE_BY_SIDE) $(LINT_STEPS) test-all

test-all: $(STAMP)
	$(COMPILE)
	$(PYTEST) --durations=15 tests

# The fast lane while developing: lint beside every test that needs neither a SeaweedFS world nor minutes.
# `make test` (what CI runs) is still the whole suite.
check: $(STAMP)
	$(SIDE_BY_SIDE) $(LINT_STEPS) test-fast

test-fast: $(STAMP)
	$(COMPILE)
	$(PYTEST) -m "not integration and not slow" tests

demo: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m reconciler.dev.demo

bench: $(STAMP)
	$(COMPILE)
	$(BIN)/python -m bench

# The aws cli pins its own botocore, and s3fs (via aiobotocore) an older one still: either would move the
# botocore boto3 uses, and they need not agree with each other, so each peer gets a venv of its own.
PEERS_VENV ?= .venv-peers
S3FS_VENV := bench/.work/peers-venv

bench-peers: $(STAMP)
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet awscli
	test -x $(S3FS_VENV)/bin/python || $(PYTHON) -m venv $(S3FS_VENV)
	$(S3FS_VENV)/bin/python -m pip install --quiet s3fs orjson
	-if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq rclone wrk; fi

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache
