# Herald: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
DEMO_RECEIVER_PORT ?= 9000
STAMP := $(VENV)/.installed

.PHONY: run demo test lint migrate bench contract screenshots clean

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "'$(PYTHON) -m venv' failed: on Debian or Ubuntu, apt install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

# Web server, qcluster and a demo receiver together; SQLite unless DATABASE_URL is set.
run: migrate
	@echo ""
	@echo "  API        http://127.0.0.1:$(PORT)/api/v1/   (key: $(BIN)/python manage.py create_api_key NAME)"
	@echo "  API docs   http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  Admin      http://127.0.0.1:$(PORT)/admin/    (user: $(BIN)/python manage.py createsuperuser)"
	@echo "  Dashboard  http://127.0.0.1:$(PORT)/dashboard/"
	@echo "  Receiver   http://127.0.0.1:$(DEMO_RECEIVER_PORT)/ (demo, verifies signatures)"
	@echo "  Demo       make demo   (in another terminal: demo subscribers and a burst of events)"
	@echo ""
	DEBUG=$${DEBUG:-true} PORT=$(PORT) DEMO_RECEIVER_PORT=$(DEMO_RECEIVER_PORT) \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f config/Procfile.dev start --port $(PORT)

# Demo subscribers (healthy, flaky, dead) at the demo receiver `make run` starts, and 30 events.
demo: migrate
	DEBUG=$${DEBUG:-true} DEMO_RECEIVER_PORT=$(DEMO_RECEIVER_PORT) PORT=$(PORT) \
		$(BIN)/python manage.py demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Throughput/latency benchmark against a fresh PostgreSQL database (see bench/README.md);
# e.g. make bench BENCH_ARGS="--short" or BENCH_ARGS="--only burst,fanout".
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The README's screenshots, taken by the browser tests from the pages they drive.
screenshots: $(STAMP)
	HERALD_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:logging tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

# Schemathesis against granian + qcluster on a fresh PostgreSQL database (tests/contract/); needs
# root for its network namespace. E.g. make contract CONTRACT_ARGS="--max-time 600".
contract: $(STAMP)
	$(BIN)/python tests/contract/run.py $(CONTRACT_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3* test_db.sqlite3* staticfiles
