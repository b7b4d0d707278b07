# Foretaste. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEV_STAMP := $(VENV)/.installed-dev
RUN_STAMP := $(VENV)/.installed-run

.DEFAULT_GOAL := help
.PHONY: help run test lint format check bench migrate seed clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Foretaste needs Python 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# `make run` needs the runtime requirements and localstripe (a dev tool, pinned in
# requirements-dev.txt); the tests need all of requirements-dev.txt.
$(RUN_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt $$(grep '^localstripe==' requirements-dev.txt)
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP) ## Install, migrate, load demo data, start web + worker + beat + localstripe
	FORETASTE_ENV=development $(PY) scripts/devserver.py

test: $(DEV_STAMP) ## Install what the tests need, then run them (PostgreSQL if DATABASE_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: $(DEV_STAMP) ## Django checks: migrations up to date, deploy settings sound
	FORETASTE_ENV=development $(PY) manage.py makemigrations --check --dry-run
	env FORETASTE_ENV=production DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	    ALLOWED_HOSTS=foretaste.example.com DATABASE_URL=postgres://foretaste:secret@db.internal:5432/foretaste \
	    CACHE_URL=redis://cache.internal:6379/1 CELERY_BROKER_URL=redis://cache.internal:6379/0 \
	    EMAIL_URL=smtp://mailer:secret@smtp.internal:587/?tls=True STRIPE_SECRET_KEY=sk_live_x \
	    STRIPE_PUBLISHABLE_KEY=pk_live_x STRIPE_WEBHOOK_SECRET=whsec_x \
	    $(PY) manage.py check --deploy --fail-level WARNING

bench: $(DEV_STAMP) ## Run the benchmarks in bench/ and print their figures
	@for script in bench/bench_*.py; do echo "== $$script"; FORETASTE_ENV=development $(PY) $$script || exit 1; done

migrate: $(RUN_STAMP) ## Apply migrations to the local database
	FORETASTE_ENV=development $(PY) manage.py migrate

seed: $(RUN_STAMP) ## Load the demo data (idempotent)
	FORETASTE_ENV=development $(PY) manage.py seed_demo

clean: ## Remove the virtualenv and local data (var/)
	rm -rf $(VENV) var
