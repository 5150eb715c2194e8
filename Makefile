# Two commands do all the set-up on a fresh machine with python3.11+:
#   make serve   bootstrap, then start the server on embedded defaults
#   make test    bootstrap, then run the whole test suite
PYTHON ?= python3
TORCH_INDEX ?=
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hotpose-installed

.PHONY: install serve test browser postgres lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hotpose needs Python 3.11+"'
	# a venv whose pip is missing (python3 -m venv failed half-way, e.g. without python3-venv) is made again
	$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned. On Linux, PyPI's torch is the CUDA build (several GB of CUDA packages);
	# where pip is not configured with a CPU build (as it is here),
	# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU wheels.
	$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e '.[dev]' -e ./client
	# BlazePose weights: the mediapipe wheel from PyPI, two files extracted and sha256-checked
	$(VENV)/bin/hotpose fetch-weights
	touch $(STAMP)

serve: install
	$(VENV)/bin/hotpose serve

test: install browser postgres
	$(PY) -m pytest -q

# The web page's tests drive a real Chromium: install Debian's package when it is missing and we
# can (root with apt); otherwise those tests skip with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	       && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; } \
	       || echo "chromium is not installable here: the browser tests will skip"; }

# The PostgreSQL job store's tests start a real server (initdb, pg_ctl): install Debian's package when
# it is missing and we can (root with apt); otherwise those tests skip with the reason.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	       && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
	            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }; } \
	       || echo "PostgreSQL is not installable here: the PostgreSQL tests will skip"; }

lint: install
	$(VENV)/bin/ruff check models service client tests
	$(VENV)/bin/ruff format --check models service client tests
	$(PY) tests/typecheck.py

bench: install
	$(VENV)/bin/hotpose bench lifter

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
