# The project's verbs: run, test, lint, bench. Each sets up what it needs first and
# skips what is already done.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Another Python gets a venv of its own, e.g. `make test-fast PYTHON=python3.13 VENV=.venv-3.13`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The PostgreSQL run of `make test` uses a fresh test database on this server.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/smartflow
# The database `make bench` drops and recreates (its name must contain "bench").
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/smartflow_bench
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-sqlite test-postgres lint typecheck format install install-dev static bench
.PHONY: test-fast browsers precommit python-version lock

# Before anything else: an unsupported Python stops here, in one line, not in a traceback
# from some dependency (pyproject.toml's requires-python).
python-version:
	@$(PYTHON) smartflow/python_version.py

$(PY): | python-version
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip

# Stamp files: reinstall only when a requirements file changed. --require-hashes: every
# file pip downloads must be the one `make lock` hashed (a changed or substituted release
# on the index stops the install).
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q --require-hashes -r requirements-dev.txt
	touch $@

# requirements*.txt from requirements*.in: every dependency pinned, with the hashes of all
# the files PyPI has for it (every platform and Python), for Python 3.11 and up. Versions
# already in a .txt are kept; after adding a package to a .in file, run `make lock`, then
# `make install-dev`. To move one package up: `make lock LOCK_ARGS="--upgrade-package X"`.
# uv (pinned and hashed in requirements-lock.txt) runs from a venv of its own, .venv-lock.
LOCK_VENV := .venv-lock
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --universal \
	--python-version 3.11 --custom-compile-command "make lock" $(LOCK_ARGS)

$(LOCK_VENV)/.installed: requirements-lock.txt | python-version
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --disable-pip-version-check -q --require-hashes \
	  -r requirements-lock.txt
	touch $@

lock: $(LOCK_VENV)/.installed
	$(UV_COMPILE) requirements.in -o requirements.txt
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) requirements-lock.in -o requirements-lock.txt

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# collectstatic writes the hashed manifest that whitenoise serves; it only copies
# changed files, so a second run takes well under a second.
static: $(VENV)/.installed
	DEBUG=true $(PY) manage.py collectstatic --noinput -v0

# Local use: DEBUG on, SQLite, console email, and the background worker beside the
# web server (stopped together with Ctrl-C). smartflow/devenv.py first writes (once) or
# updates the git-ignored .env that every later command reads: DEBUG on, a development
# SECRET_KEY, SITE_URL from HOST and PORT (so that the sandbox's webhooks and every link
# reach this server) and the sandbox's delivery seed. A `manage.py` command typed in a
# second terminal therefore behaves as the server does; delete .env to start over. The
# worker (`manage.py worker --reload`) restarts on code changes as runserver does, and
# queues again what a worker killed last time had claimed (smartflow/workers.py). Once
# the server answers, run_banner prints the URL, the test cards and how to make a staff
# login.
run: python-version static
	@$(PY) -m smartflow.devenv --host $(HOST) --port $(PORT)
	@$(PY) manage.py migrate --noinput && \
	$(PY) manage.py stripe_catalog --sandbox-only && \
	{ $(PY) manage.py worker --reload & worker=$$!; \
	  $(PY) manage.py run_banner --wait $(HOST):$(PORT) & banner=$$!; \
	  trap 'kill $$worker $$banner 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT); }

# SQLite and PostgreSQL side by side (one per core), each run's output printed whole when
# it ends; the set-up they share (venv, static files) is built once, before either starts.
# When PostgreSQL answers, each half gets TEST_HALF: the tests that do not depend on the
# database engine (browser journeys, the deployment) then run in one half only
# (tests/conftest.py: ONE_HALF); otherwise the SQLite run takes them all. Both build their
# test tables from the models (--no-migrations: migrating them was 45 s of each half): the
# migrations themselves run whole where the app is set up as its users set it up, `make
# run` on SQLite (tests/e2e/test_first_ten_minutes.py) and `migrate` on a fresh PostgreSQL
# database (tests/smartflow/test_deploy_units.py), and .ci/checks fails when the models
# have changes no migration holds.
PG_UP = $(PY) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null
test: python-version $(VENV)/.installed-dev static browsers
	@if $(PG_UP); then halves=TEST_HALVES=1; else halves=; fi; \
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres $$halves

# Everything but the browser journeys and the slow suites (markers set in tests/conftest.py),
# on SQLite: the run to repeat while working, in under two minutes. One pytest-xdist worker
# per core; the test databases are built from the models (--no-migrations: migrating every
# worker's database was a third of the run), as in `make test`.
test-fast: $(VENV)/.installed-dev static
	env -u DATABASE_URL $(PY) -m pytest -m "not e2e and not slow" --no-migrations \
	  -n $$(nproc) $(PYTEST_ARGS)

# The browser tests (tests/e2e) drive Debian's Chromium; no test installs it. Installed
# here with apt when missing and possible; otherwise those tests are skipped, and CI=true
# or REQUIRE_BROWSER=1 (where they must run) make this a failure.
CHROMIUM := /usr/bin/chromium
browsers:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif [ "$$CI" = true ] || [ -n "$$REQUIRE_BROWSER" ]; then \
		echo "$(CHROMIUM) is missing and cannot be installed here (apt-get as root)" >&2; exit 1; \
	else \
		echo "== $(CHROMIUM) missing (install Debian's chromium): browser tests will be skipped =="; \
	fi

test-sqlite: $(VENV)/.installed-dev static
	env -u DATABASE_URL $(if $(TEST_HALVES),TEST_HALF=sqlite) $(PY) -m pytest --no-migrations \
	  $(PYTEST_ARGS)

# Runs when PostgreSQL answers; REQUIRE_POSTGRES=1 (set by CI) turns "not reachable"
# into a failure instead of a skip.
test-postgres: $(VENV)/.installed-dev static
	@if $(PG_UP); then \
		echo "== PostgreSQL run =="; \
		DATABASE_URL=$(PG_TEST_URL) $(if $(TEST_HALVES),TEST_HALF=postgresql) \
		  $(PY) -m pytest --no-migrations $(PYTEST_ARGS); \
	elif [ -n "$$REQUIRE_POSTGRES" ]; then \
		echo "PostgreSQL is not reachable on 127.0.0.1:5432 and REQUIRE_POSTGRES is set" >&2; exit 1; \
	else \
		echo "== PostgreSQL not reachable on 127.0.0.1:5432: PostgreSQL run skipped =="; \
	fi

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# mypy with django-stubs (pyproject.toml [tool.mypy]); its plugin loads the settings,
# which need DEBUG on (or a real SECRET_KEY) like any management command.
typecheck: $(VENV)/.installed-dev
	DEBUG=true $(VENV)/bin/mypy

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Installs the git hook (.pre-commit-config.yaml: `make lint`'s checks, django-upgrade, a
# private-key check), then runs it once over every file.
precommit: $(VENV)/.installed-dev
	$(VENV)/bin/pre-commit install
	$(VENV)/bin/pre-commit run --all-files

# Throughput and data-volume figures, each beside its ceiling on the same server, from a
# fresh bench database; writes devtools/bench/RESULTS.md (devtools/bench/README.md). Not
# part of `make test`.
bench: $(VENV)/.installed-dev static
	$(PY) devtools/bench/run.py --database-url $(BENCH_DATABASE_URL) $(BENCH_ARGS)
