# Two commands for a new user: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_results
DEMO_PAIR ?= demo_pair

.PHONY: install demo test test-slow bench docs sample-data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,minian,nwb]'
	touch $(STAMP)

install: $(STAMP)

# The demo pair (preset `demo`: 128 x 128 px, 60 + 52 neurons, 400 s, 3 planted shared factors) is
# simulated on the first run and kept; the run shows a progress bar per stage and ends with
# the truth-versus-recovered table. Timing: docs/getting_started.md.
demo: install
	@test -f $(DEMO_PAIR)/session.toml || { echo "simulating the demo pair into $(DEMO_PAIR)/ (preset demo, seed 0) ..."; \
		$(BIN)/interbrain simulate $(DEMO_PAIR) --preset demo --seed 0; }
	$(BIN)/interbrain run $(DEMO_PAIR)/session.toml --out $(DEMO_OUT)
	@echo "Result: $(DEMO_OUT)/  (python -c \"import pipeline; print(pipeline.load('$(DEMO_OUT)'))\")"
	@echo "Report: $(DEMO_OUT)/report/report.html"
	@echo "napari: $(BIN)/interbrain view $(DEMO_OUT)"

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/run_all.py

# napari screenshots are regenerated every time (under Xvfb when there is no display)
XVFB := $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1600x1000x24")
docs: install
	$(BIN)/python scripts/gen_docs.py
	$(XVFB) $(BIN)/python scripts/napari_screenshot.py --fixture docs/images/napari_fixture.png
	@if [ -f $(DEMO_OUT)/interbrain.json ]; then \
		$(XVFB) $(BIN)/python scripts/napari_screenshot.py $(DEMO_OUT) docs/images/napari_demo.png --animal B --roi 1; \
	else echo "no $(DEMO_OUT)/ (run make demo first): docs/images/napari_demo.png kept"; fi
	$(BIN)/mkdocs build --strict --site-dir site

sample-data: install
	rm -rf sample_data/pair01
	$(BIN)/interbrain simulate sample_data/pair01 --seed 0 --preset sample

clean:
	rm -rf $(DEMO_OUT) $(DEMO_PAIR) site .pytest_cache
