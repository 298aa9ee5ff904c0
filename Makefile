PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the demo needs the runtime dependencies only; the tests add the dev extras on top.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test install install-dev lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

# The dev extras include everything the runtime needs, so this stamp also stands for the runtime one.
$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@ $(RUNTIME)

install: $(RUNTIME)

install-dev: $(DEV)

demo: $(RUNTIME)
	$(BIN)/shopfloor demo

test: $(DEV)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

# Pin what the tests pass with: the exact versions of the installed dev environment.
lock: $(DEV)
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache shopfloor.db*
