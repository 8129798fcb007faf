# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LAKE   ?= lake
OUT    ?= out

.PHONY: install demo test bench wheel-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/eventvol demo --lake $(LAKE) --out $(OUT)

test: install
	$(BIN)/pytest -q

# build the wheel, install it into a fresh venv, run the CLI and the quickstart from outside the repo
wheel-check:
	PYTHON=$(PYTHON) .ci/wheel_check.sh

bench: install
	$(BIN)/python benchmarks/bench_gex.py

clean:
	rm -rf $(LAKE) $(OUT) .pytest_cache
