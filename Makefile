PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the demo needs the runtime dependencies only; the tests add the dev extras on top.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test install install-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# The dev extras include everything the runtime needs, so this stamp also stands for the runtime one.
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(RUNTIME)

install: $(RUNTIME)

install-dev: $(DEV)

demo: $(RUNTIME)
	$(BIN)/shopfloor demo

test: $(DEV)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) .pytest_cache shopfloor.db*
