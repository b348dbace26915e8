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

# The demo: train on the built-in digits (CPU, ~5 min), then the S × η sweep with tables and figures (~6 min)
DEMO := outputs/demo
demo: install
	$(PY) train.py experiment=demo_train hydra.run.dir=$(DEMO)/train
	$(PY) evaluate.py experiment=demo_sweep ckpt=$(DEMO)/train/checkpoints/last.ckpt hydra.sweep.dir=$(DEMO)
	$(PY) evaluate.py experiment=demo_methods sampler.method=ddim,dpmpp_2m eval.recon_samples=0 \
		ckpt=$(DEMO)/train/checkpoints/last.ckpt hydra.sweep.dir=$(DEMO)/methods
	@echo "sample grid: $(DEMO)/train/samples/last.png   checkpoint: $(DEMO)/train/checkpoints/last.ckpt"
	@echo "table: $(DEMO)/results.md   figures: $(DEMO)/*.png   solvers: $(DEMO)/methods/results.md"

bench: install
	PY=$(PY) bash bench/run_all.sh

clean:
	rm -rf outputs/demo .pytest_cache
