# The developer loop. A newcomer needs two commands: `make dev` and `make test`.
# Every target installs what it is missing first, so a bare Debian/Ubuntu machine works.
# The deploy side (deploy-deps, package, synth, synth-check, diff, lint) needs only Python 3.11+
# and a virtualenv, on any OS: only the local services, the browser and the benchmark run apt.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PY_DEPS   := $(VENV)/.installed
# Azurite and PostgreSQL 16 from npm: the manifest and lock live with the tools that use them.
NODE_DEPS := devtools/node_modules/.package-lock.json
SYS_DEPS  := $(VENV)/.system-deps
# checkov pins an older `packaging` than pulumi wants, so it lives in a virtualenv of its own.
CHECKOV_DEPS := .venv-checkov/.installed

.DEFAULT_GOAL := help
.PHONY: help deps deploy-deps checkov-deps dev dev-azure test check lint bench chaos package package-lock synth synth-check diff clean

help:
	@echo "make dev      run the site locally on http://127.0.0.1:8000 (PostgreSQL + Azurite included)"
	@echo "make dev-azure STACK=dev  this checkout's site on 127.0.0.1 against a deployed stack's data (az login)"
	@echo "make test     install what is missing and run the whole suite, on every core"
	@echo "make check    the fast loop: lint, the tests that start no servers, synth-check (no apt)"
	@echo "make bench    load-test the site under gunicorn and print req/s and p99"
	@echo "make chaos    restart/pause PostgreSQL and Blob Storage under load; print 503s, slowest answer, recovery"
	@echo "make deploy-deps  only the virtualenv the Pulumi program and make package need (any OS, no apt)"
	@echo "make package  build the reproducible deploy zip (prints its path last)"
	@echo "make synth    render every stack offline into review/snapshots/ (JSON, Markdown, ARM, checkov)"
	@echo "make synth-check  fail when review/snapshots/ differs from what the program declares"
	@echo "make diff BASE=<git ref>  offline plan (Markdown) from BASE's snapshots to this program"

$(SYS_DEPS): devtools/install-system-deps.sh
	@mkdir -p $(VENV)
	devtools/install-system-deps.sh
	@touch $@

# No system packages here, so deploying works from macOS or a slim CI image. Debian's python3
# has no ensurepip without python3-venv (`make deps` installs it): stop before a venv without pip.
# An older python3 (macOS's own is 3.9) would make a venv the program can't run in: say so first.
ENSUREPIP_MISSING := $(PYTHON) has no ensurepip: install python3-venv (Debian/Ubuntu) or run make deps
PYTHON_TOO_OLD := $(PYTHON) is older than Python 3.11: install 3.11+ and run make PYTHON=python3.11 ...
$(PY_DEPS): requirements.txt webapp/requirements.txt
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "$(PYTHON_TOO_OLD)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import ensurepip' || { echo "$(ENSUREPIP_MISSING)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(NODE_DEPS): devtools/package.json devtools/package-lock.json | $(SYS_DEPS)
	PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix devtools --no-audit --no-fund --loglevel=error

$(CHECKOV_DEPS): review/requirements-checkov.txt
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r review/requirements-checkov.txt
	@touch $@

checkov-deps: $(CHECKOV_DEPS)

# The dev loop's goals install the system packages (python3-venv among them) before any
# virtualenv, also under `make -j`; the deploy side's goals never run them.
DEV_LOOP_GOALS := deps dev test bench chaos
ifneq ($(filter $(DEV_LOOP_GOALS),$(MAKECMDGOALS)),)
$(PY_DEPS) $(CHECKOV_DEPS): | $(SYS_DEPS)
endif

# Everything, for the dev loop and the tests.
deps: $(SYS_DEPS) $(PY_DEPS) $(NODE_DEPS) $(CHECKOV_DEPS)

deploy-deps: $(PY_DEPS)

dev: $(SYS_DEPS) $(PY_DEPS) $(NODE_DEPS)
	$(PY) -m devtools.dev

# The site from this checkout against a deployed stack's PostgreSQL and photos, signed in with
# your `az login` (needs the pulumi and az CLIs and the stack's developer access: README.md).
# (Not `STACK ?= dev`: `make diff` reads an unset STACK as "every stack".)
dev-azure: $(PY_DEPS)
	$(PY) -m devtools.dev_azure --stack $(or $(STACK),dev)

lint: $(PY_DEPS)
	$(PY) -m ruff check .

# One worker per core. Tests are dealt out a module at a time, so module fixtures start once,
# in the order tests/conftest.py sets (modules with slow tests first, so keep that order).
PARALLEL := -n auto --dist loadscope --no-loadscope-reorder

test: deps lint
	$(PY) -m pytest $(PARALLEL)

# Tests marked `slow` start servers or other programs (PostgreSQL, Azurite, gunicorn, Chromium,
# pip; see tests/fast_loop.py): the rest need the virtualenv only.
check: lint synth-check
	$(PY) -m pytest $(PARALLEL) -m "not slow"

bench: $(SYS_DEPS) $(PY_DEPS) $(NODE_DEPS)
	$(PY) -m devtools.bench

chaos: $(SYS_DEPS) $(PY_DEPS) $(NODE_DEPS)
	$(PY) -m devtools.chaos

package: $(PY_DEPS)
	$(PY) -m release.build

# Re-pin every vendored distribution, with hashes (uv pip compile for App Service's platform),
# after webapp/requirements.txt changes: commit both files.
package-lock: $(PY_DEPS)
	$(PY) -m release.build --lock

synth: $(PY_DEPS) $(CHECKOV_DEPS)
	$(PY) -m review.synth

synth-check: $(PY_DEPS)
	$(PY) -m review.synth --check

# The plan compares BASE's committed snapshots with this working tree's program, per stack.
# STACK=<name> limits it to one stack; OUT=<file> writes the Markdown there instead of stdout.
BASE ?= $(shell git rev-parse --verify --quiet origin/main >/dev/null && echo origin/main || echo HEAD)
diff: $(PY_DEPS)
	@$(PY) -m review.plan --base $(BASE) $(if $(STACK),--stack $(STACK)) $(if $(OUT),--output $(OUT))

clean:
	rm -rf dist build .pytest_cache .ruff_cache
