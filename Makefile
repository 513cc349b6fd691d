# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
PG_TESTS := tests/test_api.py tests/test_source_sync.py tests/test_background.py tests/test_target_snapshots.py \
	tests/test_schedule.py tests/test_events.py tests/test_media_links.py

.PHONY: demo test lint run bench-smoke

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Create the environment, install Label Studio with the plugin, and start the first-run demo.
demo: $(BIN)/activate
	$(BIN)/pip install --quiet -e ".[demo]"
	$(BIN)/label-studio-cortx demo --port $(PORT)

# Install what the tests need (including Debian's chromium, SeaweedFS and Ceph RGW) and run the whole suite.
# CORTX_REQUIRE_REAL_STORES=1: a real store that fails to start fails its tests instead of skipping them.
test: $(BIN)/activate
	$(BIN)/pip install --quiet -e ".[test]"
	bash scripts/install-browser.sh
	bash scripts/install-real-stores.sh $(VENV)
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CORTX_REQUIRE_REAL_STORES=1 $(BIN)/python -m pytest
	# The database-facing tests again on PostgreSQL (Label Studio's server-scale database).
	DJANGO_DB=postgresql POSTGRE_HOST=127.0.0.1 POSTGRE_NAME=postgres $(BIN)/python -m pytest $(PG_TESTS)
	$(MAKE) bench-smoke

# One small benchmark run per S3 server (and on PostgreSQL), so the scripts cannot rot; timings are not checked
# here (the full matrix, docs/performance.md, runs for an hour or more on a quiet machine).
bench-smoke:
	$(BIN)/python benchmarks/bench_sync.py --quick --server moto --sizes 1000 --tasks-size 200 --export-size 200 --jsonl-rows 200000 --json-list-mb 100 --no-doc
	$(BIN)/python benchmarks/bench_sync.py --quick --server seaweedfs --db postgresql --sizes 1000 --tasks-size 200 --export-size 200 --jsonl-rows 0 --no-doc
	$(BIN)/python benchmarks/bench_sync.py --quick --server rgw --sizes 1000 --tasks-size 200 --export-size 200 --jsonl-rows 0 --no-doc
	$(BIN)/python benchmarks/bench_media.py --quick --seconds 2 --clients 1,4 --web runserver,gunicorn,uwsgi
	$(BIN)/python benchmarks/bench_media.py --quick --seconds 2 --clients 4 --server seaweedfs --db postgresql --web gunicorn --rounds 2 --round-seconds 1
	$(BIN)/python benchmarks/bench_listing.py --server seaweedfs --keys 3000 --ranges 1,2,auto --repeat 1
	$(BIN)/python benchmarks/bench_listing.py --server rgw --keys 3000 --ranges 1,2,auto --repeat 1 --delayed-acks
	$(BIN)/python benchmarks/bench_listing.py --server moto --keys 1000 --ranges 1,2 --repeat 1

# Label Studio with the plugin against your own store (see README "Use your own CORTX endpoint").
run: $(BIN)/activate
	$(BIN)/pip install --quiet -e .
	$(BIN)/label-studio-cortx start --port $(PORT)
