# galaxy-synth — every target bootstraps .venv on first use.
#   make synth                       study on the embedded procedural galaxies
#   make synth DATA=path TRIALS=60   your own images; run again to resume
#   make synth WORKERS=2             2 worker processes (default: one single-threaded process per allotted core)
#   make correlate                   full-train 24 of the study's trials, fit + report the proxy
#   make export                      fully train + package the top 3 (results/studies/<study>/models/rank*/)
#   make report                      results/studies/<study>/report/index.html
#   make test                        the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Study options passed through to `galaxy-synth synth` (empty = the CLI's default).
DATA        ?=
TRIALS      ?=
STUDY       ?=
STORAGE     ?=
SIZE        ?=
EPOCHS      ?=
SEED        ?=
RESULTS     ?=
DEVICE      ?=
MAX_SAMPLES ?=
MERGE       ?=
DROP        ?=
ARGS        ?=
GROUND_TRUTH ?=
FULL_EPOCHS ?=
TARGET      ?=
TABLE       ?=
WORKERS     ?=
TOP         ?=
PORT        ?=

opt = $(if $(strip $(2)),$(1) $(2))
SYNTH_ARGS = $(call opt,--data,$(DATA)) $(call opt,--trials,$(TRIALS)) $(call opt,--study,$(STUDY)) \
	$(call opt,--storage,$(STORAGE)) $(call opt,--size,$(SIZE)) $(call opt,--epochs,$(EPOCHS)) \
	$(call opt,--seed,$(SEED)) $(call opt,--results,$(RESULTS)) $(call opt,--device,$(DEVICE)) \
	$(call opt,--max-samples,$(MAX_SAMPLES)) $(call opt,--merge,$(MERGE)) $(call opt,--drop,$(DROP)) $(call opt,--workers,$(WORKERS)) $(ARGS)

CORRELATE_ARGS = $(call opt,--table,$(TABLE)) $(call opt,--target,$(TARGET)) $(call opt,--study,$(STUDY)) \
	$(call opt,--storage,$(STORAGE)) $(call opt,--results,$(RESULTS)) $(call opt,--device,$(DEVICE)) \
	$(call opt,--seed,$(SEED)) $(call opt,--ground-truth,$(GROUND_TRUTH)) $(call opt,--full-epochs,$(FULL_EPOCHS)) $(ARGS)

.PHONY: venv synth correlate rank test test-fast bench clean-venv help postgres-server browser export report dashboard

help:
	@sed -n "1,8p" Makefile

venv: $(STAMP)

# constraints.txt pins the torch build that this project's machines install from local wheels.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

synth: $(STAMP)
	$(BIN)/galaxy-synth synth $(SYNTH_ARGS)

correlate: $(STAMP)
	$(BIN)/galaxy-synth correlate $(CORRELATE_ARGS)

export: $(STAMP)
	$(BIN)/galaxy-synth export $(call opt,--top,$(TOP)) $(call opt,--full-epochs,$(FULL_EPOCHS)) $(call opt,--study,$(STUDY)) \
		$(call opt,--storage,$(STORAGE)) $(call opt,--results,$(RESULTS)) $(call opt,--device,$(DEVICE)) $(call opt,--seed,$(SEED)) $(ARGS)

report: $(STAMP)
	$(BIN)/galaxy-synth report $(call opt,--study,$(STUDY)) $(call opt,--storage,$(STORAGE)) $(call opt,--results,$(RESULTS))

# optuna-dashboard (optional extra) on the study's storage; artifacts from export appear on the study.
dashboard: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dashboard]'
	$(BIN)/optuna-dashboard $(or $(STORAGE),sqlite:///$(or $(RESULTS),results)/study.db) \
		--artifact-dir $(or $(RESULTS),results)/artifacts $(call opt,--port,$(PORT))

rank: $(STAMP)
	$(BIN)/galaxy-synth rank $(call opt,--study,$(STUDY)) $(call opt,--storage,$(STORAGE)) $(call opt,--results,$(RESULTS))

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/trial_throughput.py

# Debian's PostgreSQL server binaries, for the multi-worker test on a real server (it skips, saying
# why, where they cannot be installed). Best effort: needs root or sudo and the package registry.
postgres-server:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
			|| echo "could not install postgresql; its test will skip"; \
	elif command -v sudo >/dev/null 2>&1; then \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
			|| echo "could not install postgresql; its test will skip"; \
	else echo "no root to install postgresql; its test will skip"; fi

# Debian's Chromium, for the test that renders the HTML report headless (it skips, saying why, without).
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "could not install chromium; the report browser test will skip"; \
	else echo "no root to install chromium; the report browser test will skip"; fi

clean-venv:
	rm -rf $(VENV)
