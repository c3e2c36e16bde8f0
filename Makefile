# Two commands for a new user: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_results

.PHONY: install demo test test-slow bench docs sample-data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,minian,nwb]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/interbrain run sample_data/pair01/session.toml --out $(DEMO_OUT)
	@echo "Result: $(DEMO_OUT)/  (python -c \"import pipeline; print(pipeline.load('$(DEMO_OUT)'))\")"
	@echo "Report: $(DEMO_OUT)/report/report.html"

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/run_all.py

docs: install
	$(BIN)/python scripts/gen_docs.py
	$(BIN)/mkdocs build --strict --site-dir site

sample-data: install
	rm -rf sample_data/pair01
	$(BIN)/interbrain simulate sample_data/pair01 --seed 0 --preset sample

clean:
	rm -rf $(DEMO_OUT) site .pytest_cache
