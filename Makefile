# The README's commands. Each target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYNTH := data/synthetic

.PHONY: setup run demo test lint bench

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with everything installed

run: setup  ## the main job: download FGVC-Aircraft, fine-tune EfficientNet-B4
	$(PY) -m fgvc.cli train --preset b4

$(SYNTH)/fgvc-aircraft-2013b/data/variants.txt: | $(STAMP)
	$(PY) -m fgvc.cli synth --out $(SYNTH)

demo: setup $(SYNTH)/fgvc-aircraft-2013b/data/variants.txt  ## the same pipeline offline on synthetic data, on the CPU
	$(PY) -m fgvc.cli train --preset demo

test: setup  ## the test suite (offline, CPU)
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check fgvc tests
