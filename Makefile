# The two commands of the README: `make run` and `make test`.  Each sets up .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.teachkit-installed
PORT   ?= 8501
# Largest upload in MB.  The same number goes to the server (which enforces it for every request,
# whatever the browser does) and to the app (which checks at start that the server's limit is not
# larger, and refuses uploads if it is).  `make run UPLOAD_MB=5` lowers both.
UPLOAD_MB ?= $(if $(TEACHKIT_UPLOAD_MAX_MB),$(TEACHKIT_UPLOAD_MAX_MB),10)
# Lesson 1's dataset-folder box is off unless a data root is named: `make run DATA_ROOT=~/Pictures`
# lets visitors pick folders inside that root only.
DATA_ROOT ?=
# The live demos' time limit in seconds (lessons 2-5); empty: the app's default (TEACHKIT_DEMO_SECONDS, else 25).
DEMO_SECONDS ?=

.PHONY: run test transfer setup bench bench-load clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job: the teaching app on the bundled images (no arguments, no downloads), served to the
# classroom on every interface by `teachkit app`, which holds the served settings (teachkit/serve.py:
# upload limit, no error details for visitors, no file watcher).  `make run DEMO_SECONDS=40` changes
# the live demos' time limit.
run: $(STAMP)
	$(BIN)/teachkit app --port $(PORT) --upload-mb $(UPLOAD_MB) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)") \
	  $(if $(DEMO_SECONDS),--demo-seconds $(DEMO_SECONDS))

# A full style transfer on the bundled images, written to out/transfer.png.
transfer: $(STAMP)
	$(BIN)/teachkit transfer -o out/transfer.png --log out/transfer.json --plot out/transfer_costs.png

# Every test, on two workers (pytest-xdist; each test file on one worker, so its fixtures are built once;
# the slowest files first: tests/conftest.py),
# each with one torch thread: together they fill the two cores of a small laptop instead of fighting over them.
TEST_WORKERS ?= 2
test: $(STAMP)
	TEACHKIT_OFFLINE=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python benchmarks/transfer.py
	$(BIN)/python benchmarks/patches.py
	$(BIN)/python benchmarks/app.py
	$(BIN)/python benchmarks/figures.py

# A class of 30, then 60 students played through Streamlit's protocol against a fresh local server
# each (benchmarks/load.py), after `teachkit prepare` as before a class (about 10 minutes the first
# time, nothing once the cache holds it); the two classes take about 20 minutes on a quiet 2-core laptop.
# The profile needs py-spy (`.venv/bin/pip install py-spy`, not a dependency of teachkit); without it
# the table still comes.
bench-load: $(STAMP)
	OMP_NUM_THREADS=1 TEACHKIT_OFFLINE=1 $(BIN)/teachkit prepare
	$(BIN)/python benchmarks/load.py --students 30,60 --browsers 2 --profile --json out/load.json

clean:
	rm -rf $(VENV) out .pytest_cache
