# Only Python 3.11, git and make are assumed; everything else is installed here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv install test lint demo bench bench-peers clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/mypy --strict reconciler
	$(BIN)/mypy tests bench

# Byte-compiled once up front: where PYTHONDONTWRITEBYTECODE is set (as on some CI and sandbox images) every
# `pixel` the tests and the benchmark start would otherwise compile all of reconciler again.
COMPILE = $(BIN)/python -m compileall -q reconciler

test: lint
	$(COMPILE)
	$(BIN)/pytest -q tests

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
