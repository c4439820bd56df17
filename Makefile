# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
export QT_API = pyqt6
export PYTEST_QT_API = pyqt6
export HF_HUB_OFFLINE = 1
export XDG_CONFIG_HOME ?= $(CURDIR)/.xdg/config
export XDG_CACHE_HOME ?= $(CURDIR)/.xdg/cache
export MPLCONFIGDIR ?= $(CURDIR)/.xdg/matplotlib

.PHONY: setup demo test lint

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/napari-cellseg demo

test: setup
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider --durations=15

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
