# One entry point for people and CI. `make test` runs the suite on the newest supported transformers
# (the venv's) and again on the oldest (4.57, overlaid from .oldest/); `make test-fast` runs the unit
# tier only. Tiers (unit / integration / e2e / browser) follow the test folders: tests/conftest.py.
VENV ?= .venv
PY := $(VENV)/bin/python
OLDEST := .oldest
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install chromium test test-fast test-newest test-oldest check format bench demo eval-demo serve

# The first command for a newcomer: environment, install, and the shipped demo model on a bundled
# screenshot (no network). Outputs land in lav-demo/.
demo:
	@test -x $(VENV)/bin/lav || $(MAKE) install
	$(VENV)/bin/lav demo

# lav eval on a synthetic ScreenSpot-Pro-layout benchmark from the demo screens, base vs adapter
# (no network). Outputs land in lav-eval-demo/out (run it again: it resumes, then re-summarises);
# every sample's maps are kept, so `lav serve --results lav-eval-demo` opens each row.
eval-demo:
	@test -x $(VENV)/bin/lav || $(MAKE) install
	$(VENV)/bin/lav demo-data --out lav-eval-demo/data
	$(VENV)/bin/lav eval --model demo --adapter demo \
		--data lav-eval-demo/data --compare-base --save-maps --device cpu --out lav-eval-demo/out

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch 2.14.1 + torchvision 0.29.1 are the builds that install without a download on our machines;
# the Qwen3-VL processor needs torchvision.
install: $(PY) chromium
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	# Every extra: the tests cover the server (serve), the training callback (train) and 4/8-bit bases (quant).
	$(PY) -m pip install -e ".[dev,serve,train,quant]"
	# The oldest supported transformers, overlaid on the same venv via PYTHONPATH (with the hub client
	# and tokenizers releases it pins, and requests, which that hub client needs), and a datasets that
	# imports with that hub client (datasets 5 needs huggingface-hub 1), with the fsspec it pins: so
	# the oldest pass runs the datasets and Trainer tests too instead of skipping them.
	$(PY) -m pip install --no-deps --upgrade --target $(OLDEST) "transformers==4.57.6" "huggingface-hub>=0.34,<1.0" \
		"tokenizers>=0.22,<=0.23.0" requests charset-normalizer urllib3 certifi \
		"datasets>=4.0,<5" "fsspec>=2023.1.0,<=2026.2.0"

# tests/browser drives Debian's Chromium through Playwright (never `playwright install`: no downloads).
# Installed here as root with apt-get; otherwise a one-line note, and the browser tests skip saying
# why, except under CI (CI=true), where a missing Chromium fails the install and the tests.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's Chromium for tests/browser (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "note: apt-get could not install chromium; tests/browser will skip (an error under CI=true)"; [ "$$CI" != true ]; }; \
	else \
		echo "note: $(CHROMIUM) is missing and needs root + apt-get (apt-get install chromium); tests/browser will skip (an error under CI=true)"; \
		[ "$$CI" != true ]; \
	fi

test: test-newest test-oldest

# The unit tier on the newest transformers: under 2 minutes on 2 cores.
test-fast:
	$(PY) -m pytest -q -m unit

test-newest:
	$(PY) -m pytest -q

test-oldest:
	PYTHONPATH=$(OLDEST) $(PY) -m pytest -q

check:
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

format:
	$(VENV)/bin/ruff format src tests bench examples
	$(VENV)/bin/ruff check --fix src tests bench examples

# Ratios of alternated pairs on a quiet machine (min / median / max); see the README's Performance.
bench:
	$(PY) bench/received.py
	$(PY) bench/run_overhead.py
	$(PY) bench/real_size.py
	$(PY) bench/demo_eval.py

# The visualizer in the browser on http://127.0.0.1:8765/ (the shipped demo model; no download).
serve:
	@test -x $(VENV)/bin/lav || $(MAKE) install
	$(VENV)/bin/lav serve
