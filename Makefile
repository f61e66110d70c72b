# The two commands of the README: `make run` and `make test`.  Each sets up .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.teachkit-installed
PORT   ?= 8501

.PHONY: run test transfer setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job: the teaching app on the bundled images (no arguments, no downloads).
run: $(STAMP)
	$(BIN)/streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

# A full style transfer on the bundled images, written to out/transfer.png.
transfer: $(STAMP)
	$(BIN)/teachkit transfer -o out/transfer.png --log out/transfer.json --plot out/transfer_costs.png

test: $(STAMP)
	TEACHKIT_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/transfer.py
	$(BIN)/python benchmarks/patches.py
	$(BIN)/python benchmarks/app.py

clean:
	rm -rf $(VENV) out .pytest_cache
