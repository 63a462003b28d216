# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
DATA_DIR ?= ./data
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-webhooks bench-s3 bench-vast bench-operator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	TAMS_DATA_DIR=$(DATA_DIR) TAMS_PUBLIC_URL=$${TAMS_PUBLIC_URL:-http://127.0.0.1:$(PORT)} \
		$(BIN)/tams-api serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check tams_api operator tests e2e bench scripts conftest.py
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check tams_api operator tests e2e bench scripts conftest.py
	$(BIN)/ruff format --check tams_api operator tests e2e bench scripts conftest.py

bench: $(VENV)/.installed
	$(BIN)/python -m bench.segments

bench-webhooks: $(VENV)/.installed
	$(BIN)/python -m bench.webhooks

bench-s3: $(VENV)/.installed
	$(BIN)/python -m bench.s3_listing

bench-vast: $(VENV)/.installed
	$(BIN)/python -m bench.vast_store

bench-operator: $(VENV)/.installed
	$(BIN)/python -m bench.operator

clean:
	rm -rf $(VENV) $(DATA_DIR)
