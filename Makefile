# Two commands from a fresh clone: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pinned to the releases on this machine's disk; elsewhere override, e.g. TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-all demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH)
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m ddim.demo

bench: install
	$(PY) bench/sampler_overhead.py

clean:
	rm -rf outputs/demo .pytest_cache
