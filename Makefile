# reviewlib: the two commands of the README's quick start.
#   make run   - set up .venv, install, run the default review offline, write HTML into results/
#   make test  - the whole test suite
#   make lab   - JupyterLab on notebooks/, saving no outputs into the tracked notebooks
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JUPYTER_HOOK := $(VENV)/etc/jupyter/jupyter_server_config.json

.PHONY: run test install browser clean snapshot bench lab jupyter-config

$(STAMP): pyproject.toml
	@echo "make: setting up $(VENV) and installing reviewlib with its dependencies (first time only; about 3 min)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
	@echo "make: $(VENV) is ready."

install: $(STAMP) $(JUPYTER_HOOK)

run: $(STAMP) $(JUPYTER_HOOK)
	@echo "make: running the default review offline on the synthetic demo snapshot (30 s to 1 min)..."
	@$(BIN)/reviewlib run --offline

# JupyterLab never saves outputs into the project's tracked notebooks (git stays clean): this puts the
# project's save hook (reviewlib.notebook_saving) into the venv's Jupyter config, so `.venv/bin/jupyter lab`
# uses it wherever it is started.
$(JUPYTER_HOOK): notebooks/jupyter-config/jupyter_server_config.json $(STAMP)
	@mkdir -p $(@D)
	@cp $< $@

jupyter-config: $(JUPYTER_HOOK)

lab: $(STAMP) $(JUPYTER_HOOK)
	@echo "make: starting JupyterLab on notebooks/ (outputs are not saved into the tracked notebooks)..."
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks

# Headless Chromium for the browser tests: Debian's package, installed when we are root and it is missing.
# Outside CI a missing Chromium only skips the browser tests; with CI=true (set by CI) it fails the build,
# and apt-get's own output is shown.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "make: installing Debian's chromium for the browser tests (about 2 min)..." && \
	  if [ "$${CI:-}" = true ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; fi; } || true
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$${CI:-}" = true ]; then echo "chromium: NOT INSTALLED and CI=true: the browser tests must run in CI" \
	  "(install the Debian package chromium as root, or run CI in an image that has it)" >&2; exit 1; \
	else echo "chromium: not installed (not root or no apt-get); browser tests will be skipped"; fi

test: $(STAMP) $(JUPYTER_HOOK) browser
	@echo "make: running the whole test suite (real notebooks, servers and a browser: several minutes)..."
	@$(BIN)/python -m pytest

snapshot: $(STAMP)
	$(BIN)/python -m reviewlib.demo.snapshot

# Benchmarks print ratios against a peer on the same input in the same run (see README).
bench: $(STAMP)
	$(BIN)/python benchmarks/parse.py
	$(BIN)/python benchmarks/extraction.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) results/*/ .pytest_cache
