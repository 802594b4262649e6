# The README's two commands. Each creates .venv if missing and installs the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-test serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

## make demo: sandboxes + gateway in one process, a one-click inquiry, the asset report and the verified audit trail
demo: install
	$(BIN)/gateway demo

## make test: the whole suite, against SQLite and against PostgreSQL (127.0.0.1:5432, database test)
LINTED := gateway adapters schemas audit sandboxes
# Two pytest-xdist processes: the suite mostly waits on sockets and commits (README).
PYTEST_PROCESSES ?= 2

test: install-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy $(LINTED)
	$(BIN)/python -m pytest -n $(PYTEST_PROCESSES)

serve: install
	$(BIN)/gateway serve --with-sandboxes

## make bench: every benchmark, one after the other; each prints its ratio as its last line
BENCHES := intake audit protocols fanout pull

bench: install-test
	@set -e; for name in $(BENCHES); do echo "== bench/$$name.py"; $(BIN)/python bench/$$name.py; done

clean:
	rm -rf $(VENV) instance .pytest_cache build *.egg-info
