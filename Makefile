# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint fmt clean bench screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/equator run

test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.journey_throughput
	$(BIN)/python -m bench.ingest_throughput
	$(BIN)/python -m bench.fanout_throughput
	$(BIN)/python -m bench.fanout_throughput --existing
	$(BIN)/python -m bench.fanout_throughput --existing --journeys --customers 2000
	$(BIN)/python -m bench.versus_bare --encrypted
	$(BIN)/python -m bench.api_latency
	$(BIN)/python -m bench.api_latency --postgres
	$(BIN)/python -m bench.scale_out
	$(BIN)/python -m bench.simulation_speed
	$(BIN)/python -m bench.simulation_timers

# Pictures of the Temporal UI as ops see it, and of the programme report (Debian's
# chromium, installed if missing).
screenshots: $(STAMP)
	@command -v chromium >/dev/null || apt-get install -y --no-install-recommends chromium
	$(BIN)/python -m scripts.ui_screenshots
	$(BIN)/python -m scripts.report_screenshot

clean:
	rm -rf $(VENV) data build *.egg-info
