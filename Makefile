# reviewlib: the two commands of the README's quick start.
#   make run   - set up .venv, install, run the default review offline, write HTML into results/
#   make test  - the whole test suite
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install browser clean snapshot bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/reviewlib run --offline

# Headless Chromium for the browser tests: Debian's package, installed when we are root and it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; } || true
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(command -v chromium)" || \
	  echo "chromium: not installed (not root or no apt-get); browser tests will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest

snapshot: $(STAMP)
	$(BIN)/python -m reviewlib.demo.snapshot

# Benchmarks print ratios against a peer on the same input in the same run (see README).
bench: $(STAMP)
	$(BIN)/python benchmarks/parse.py
	$(BIN)/python benchmarks/extraction.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) results/*/ .pytest_cache
