# The kit's set-up and daily commands. `make test` and `make report` work on a fresh Debian machine:
# they create .venv, install the kit with its dev extras, and the system tools it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-deps

.PHONY: setup test test-fast mypy lint format report jupyter bench sanitize fuzz sample clean

setup: $(STAMP) $(SYSSTAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py kit/_fastlog.c kit/_fastcap.c kit/_arrow_c.h | $(VENV)/bin/python $(SYSSTAMP)
	$(BIN)/python -m pip install -q --upgrade pip setuptools
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dns-incident-kit)" >/dev/null
	$(BIN)/python -c 'import kit.report.notebooks as n; print("JupyterLab settings:", n.setup_lab())'
	touch $@

$(SYSSTAMP): tools/system-deps.sh | $(VENV)/bin/python
	bash tools/system-deps.sh
	touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy kit
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop (under a minute, on both cores through pytest-xdist): the in-process tests only (`unit`: no kernel, no server, no lab,
# no slow robustness or fuzz run; tests/conftest.py marks every test that is none of those).
test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -m unit -n 2 $(PYTEST_ARGS)

mypy: setup
	$(BIN)/mypy kit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

report: setup
	$(BIN)/dnskit report data/sample -o reports/sample.html

# Working copies of the notebooks in dnskit-notebooks/ (ignored by git; edits there are kept),
# pointed at ARTEFACTS (default: the sample data), and JupyterLab started there: double-click a
# notebook, Run All. `make jupyter ARTEFACTS=path/to/incident JUPYTER_ARGS=--no-browser`
ARTEFACTS ?=
JUPYTER_ARGS ?=
jupyter: setup
	$(BIN)/dnskit open $(ARTEFACTS) -- $(JUPYTER_ARGS)

bench: setup
	$(BIN)/python bench/run.py

sanitize: setup
	$(BIN)/python tools/sanitize.py

# Seeded mutation fuzzing of the loaders, long mode (10,000 inputs per loader; tests/test_fuzz.py
# runs the CI budget). FUZZ_ARGS e.g. "--seed 7" or "--inputs 2000"; findings kept in bench/out/fuzz.
fuzz: setup
	$(BIN)/python tools/fuzz.py --long --keep bench/out/fuzz --json bench/out/fuzz/summary.json $(FUZZ_ARGS)

sample: setup
	@if [ "$$(id -u)" -ne 0 ]; then echo "make sample needs root (it creates network namespaces)"; exit 1; fi
	$(BIN)/python -m lab run --out data/sample --replace --phases healthy=20,incident=60,fix=20 \
		--qps 30 --client-timeout 20 --gzip-over 0

# One committed run per scenario of the catalogue (lab/scenarios.py), each with its defaults.
.PHONY: scenarios
scenarios: setup
	@if [ "$$(id -u)" -ne 0 ]; then echo "make scenarios needs root (it creates network namespaces)"; exit 1; fi
	for s in $$($(BIN)/python -m lab scenarios | cut -f1); do \
		$(BIN)/python -m lab run --scenario $$s --out data/scenarios/$$s --prefix dkscn --replace || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .cache reports test-artifacts bench/out
