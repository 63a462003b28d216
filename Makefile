# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
DATA_DIR ?= ./data
BIN := $(VENV)/bin
IMAGE ?= tams-operator:dev
BASE_IMAGE ?=
IMAGE_BUILD_FLAGS ?=
CHART := charts/tams-operator

.PHONY: run test e2e e2e-down lint bench bench-profile bench-paging bench-webhooks bench-s3 bench-vast bench-postgres bench-backup bench-operator bench-cluster bench-metrics bench-memory bench-contention image chart-crds clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the project metadata changes: what the service needs (`make run`), then the tests' tools
# on top (`make test` and the rest).
$(VENV)/.runtime: pyproject.toml scripts/vendor_web.py | $(BIN)/python
	$(BIN)/pip install --quiet --quiet -e .
	$(BIN)/python scripts/vendor_web.py
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(BIN)/pip install --quiet --quiet -e '.[test]'
	touch $@

# A person watching sees each request (TAMS_ACCESS_LOG=false turns it off).
run: $(VENV)/.runtime
	TAMS_DATA_DIR=$(DATA_DIR) TAMS_PUBLIC_URL=$${TAMS_PUBLIC_URL:-http://127.0.0.1:$(PORT)} \
		TAMS_ACCESS_LOG=$${TAMS_ACCESS_LOG:-true} $(BIN)/tams-api serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check tams_api operator tests e2e bench scripts conftest.py
	$(BIN)/python -m pytest

# The scenario on a kind cluster (root, Linux): e2e/cluster/. On Docker with kind's stock node image where Docker
# answers; else on podman with a node image assembled here (e2e/cluster/node_image.py), nothing pulled. Builds and
# caches what it needs on first use; E2E_KEEP=1 leaves the cluster up (then `make e2e-down`).
e2e: $(VENV)/.installed
	$(BIN)/python -m pytest -m cluster e2e/cluster

e2e-down: $(VENV)/.installed
	$(BIN)/python e2e/cluster/kind_cluster.py down

lint: $(VENV)/.installed
	$(BIN)/ruff check tams_api operator tests e2e bench scripts conftest.py
	$(BIN)/ruff format --check tams_api operator tests e2e bench scripts conftest.py

bench: $(VENV)/.installed
	$(BIN)/python -m bench.segments

bench-profile: $(VENV)/.installed  # where a window GET's server time goes (py-spy; needs ptrace)
	$(BIN)/python -m bench.profile_window

bench-paging: $(VENV)/.installed
	$(BIN)/python -m bench.paging_depth

bench-webhooks: $(VENV)/.installed
	$(BIN)/python -m bench.webhooks

bench-s3: $(VENV)/.installed
	$(BIN)/python -m bench.s3_listing

bench-vast: $(VENV)/.installed
	$(BIN)/python -m bench.vast_store

bench-postgres: $(VENV)/.installed
	$(BIN)/python -m bench.postgres_store

bench-backup: $(VENV)/.installed
	$(BIN)/python -m bench.backup

bench-operator: $(VENV)/.installed
	$(BIN)/python -m bench.operator

# Apply -> Ready with real pods on the e2e cluster (root on Linux, as make e2e).
bench-cluster: $(VENV)/.installed
	$(BIN)/python -m bench.cluster_ready

bench-metrics: $(VENV)/.installed
	$(BIN)/python -m bench.metrics_middleware

# Peak memory of hostile requests and resident memory over busy/idle cycles.
bench-memory: $(VENV)/.installed
	$(BIN)/python -m bench.memory

# Two API processes on one SQLite file: maximal bulks against small writes.
bench-contention: $(VENV)/.installed
	$(BIN)/python -m bench.sqlite_contention

# The API and operator image, with podman, or else docker with a running daemon.
# BASE_IMAGE=... builds on another Debian-based Python 3.11+ image (the Dockerfile's default otherwise).
# IMAGE_BUILD_FLAGS=... passes more flags to the builder (e2e/cluster/images.py: host network, the machine's CA
# bundle mounted for pip).
image:
	@if command -v podman >/dev/null 2>&1; then engine=podman; \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; \
	else echo "make image: needs podman, or docker with a running daemon; found neither" >&2; exit 1; fi; \
	build="$$engine build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE) )$(if $(IMAGE_BUILD_FLAGS),$(IMAGE_BUILD_FLAGS) )-t $(IMAGE) ."; \
	echo "$$build"; $$build

# The chart's copies of crds/ and of rbac/operator.yaml (its ClusterRole's rules): Helm reads only files inside
# the chart. tests/test_chart.py fails when they drift.
chart-crds:
	rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/
	cp rbac/operator.yaml $(CHART)/files/operator-rbac.yaml

clean:
	rm -rf $(VENV) $(DATA_DIR)
