# One entry point for people and CI. `make test` runs the suite on the newest supported transformers
# (the venv's) and again on the oldest (4.57, overlaid from .oldest/).
VENV ?= .venv
PY := $(VENV)/bin/python
OLDEST := .oldest
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test test-newest test-oldest check format bench demo serve

# The first command for a newcomer: environment, install, and the shipped demo model on a bundled
# screenshot (no network). Outputs land in lav-demo/.
demo:
	@test -x $(VENV)/bin/lav || $(MAKE) install
	$(VENV)/bin/lav demo

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch 2.14.1 + torchvision 0.29.1 are the builds that install without a download on our machines;
# the Qwen3-VL processor needs torchvision.
install: $(PY)
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -e ".[dev,serve]"
	# The oldest supported transformers, overlaid on the same venv via PYTHONPATH (with the hub client
	# and tokenizers releases it pins, and requests, which that hub client needs).
	$(PY) -m pip install --no-deps --upgrade --target $(OLDEST) "transformers==4.57.6" "huggingface-hub>=0.34,<1.0" \
		"tokenizers>=0.22,<=0.23.0" requests charset-normalizer urllib3 certifi

test: test-newest test-oldest

test-newest:
	$(PY) -m pytest -q

test-oldest:
	PYTHONPATH=$(OLDEST) $(PY) -m pytest -q

check:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format:
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench:
	$(PY) bench/received.py
	$(PY) bench/run_overhead.py
	$(PY) bench/demo_eval.py

# The visualizer in the browser on http://127.0.0.1:8765/ (the shipped demo model; no download).
serve:
	@test -x $(VENV)/bin/lav || $(MAKE) install
	$(VENV)/bin/lav serve
