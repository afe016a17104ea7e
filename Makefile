# Two commands on a fresh machine: `make run` (with TELEGRAM_BOT_TOKEN and ZHIPU_API_KEY set,
# in the shell or in .env) and `make test`. Both create .venv and install the project on
# first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Secrets for `make run` (and docker compose); ignored by git and by docker builds.
ENV_FILE ?= .env

.PHONY: run test test-unit test-e2e test-deploy lint bench lock

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	touch $(STAMP)

# Reads $(ENV_FILE) when it exists; a variable set in the shell wins over the file.
run: $(STAMP)
	$(PY) -m bot $(if $(wildcard $(ENV_FILE)),--env-file $(ENV_FILE))

test: $(STAMP)
	$(PY) -m pytest -q

# The lanes of `make test` (markers set in tests/conftest.py): unit runs in seconds, no
# processes; e2e starts bots, replicas and servers; deploy checks image, compose, Caddy.
test-unit: $(STAMP)
	$(PY) -m pytest -q --strict-markers -m unit

test-e2e: $(STAMP)
	$(PY) -m pytest -q --strict-markers -m e2e

test-deploy: $(STAMP)
	$(PY) -m pytest -q --strict-markers -m deploy

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

# Pin the runtime dependencies of a clean install for the Docker image.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install --quiet .
	{ echo "# Runtime dependencies pinned for the Docker image (make lock regenerates this file)."; \
	  .lock-venv/bin/pip freeze --exclude glmbot; } > requirements.lock
	rm -rf .lock-venv
