# The two commands a newcomer types are `make run` and `make test`; each builds .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(VENV)/.installed $@

# The quickstart: every planner on three example workflows, 5 seeds (experiments/quickstart.toml);
# prints the comparison table, writes results/quickstart (tables, summary.md, index.html, plots).
run: $(VENV)/.installed
	$(BIN)/faasdag run experiments/quickstart.toml --out results/quickstart --jobs 2
	$(BIN)/faasdag run experiments/quickstart_recorded.toml --out results/quickstart-recorded --jobs 2

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	@for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
