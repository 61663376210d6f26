# The two commands a new user needs:
#   make demo   start the sandbox, run the checks against it, print the verdict, stop it
#   make test   run the suite's own tests
# Both install what they need first (a .venv, Debian packages when missing) and skip what is
# already installed, so a second run starts in seconds.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
# Debian packages the sandbox runs: binary to look for -> package that provides it.
# (nodejs/npm run Allure Report 3 for `playbook report`; chromium: the report's test.)
DEB_NEEDS := /usr/lib/postgresql/*/bin/postgres:postgresql \
             /usr/lib/postgresql/*/lib/pg_stat_statements.so:postgresql-contrib \
             redis-server:redis-server \
             prometheus:prometheus \
             promtool:prometheus \
             prometheus-alertmanager:prometheus-alertmanager \
             amtool:prometheus-alertmanager \
             node:nodejs \
             npm:npm \
             chromium:chromium
PYTEST_ARGS ?=

.PHONY: demo test lint install deps venv node clean

# The checks' verdict is demo's exit code; the report is made either way and its path printed.
demo: install
	@$(BIN)/playbook demo $(PYTEST_ARGS); code=$$?; $(BIN)/playbook report || true; exit $$code

# Two workers (the machine has 2 cores; most tests wait on sandboxes, alerts and timers), one
# test module per worker so that a module's sandbox is started once.
test: install
	$(BIN)/python -m pytest tests -p no:cacheprovider -n 2 --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

install: venv deps node

# Allure Report 3 (npm `allure`, pinned in package.json/package-lock.json) into ./node_modules;
# npm's own node_modules/.package-lock.json is the stamp (gone with node_modules).
node: deps node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# --compile-bytecode: imports read .pyc even under PYTHONDONTWRITEBYTECODE (the kubernetes
# client would compile seconds of source in every process otherwise).
venv: $(STAMPS)/venv

$(STAMPS)/venv: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is needed ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv
	$(BIN)/uv pip install --python $(BIN)/python -q --compile-bytecode -e '.[dev]'
	@mkdir -p $(STAMPS) && touch $@

deps:
	@missing=""; for need in $(DEB_NEEDS); do \
	  bin=$${need%%:*}; pkg=$${need##*:}; \
	  if ! compgen -G "$$bin" >/dev/null && ! command -v "$$bin" >/dev/null; then \
	    case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing - run: sudo apt-get install --no-install-recommends$$missing"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi

clean:
	-$(BIN)/playbook sandbox down
	rm -rf $(VENV) $(STAMPS) reports .sandbox node_modules
