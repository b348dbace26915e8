# Two commands from a fresh clone: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pinned to the releases on this machine's disk; elsewhere override, e.g. TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-lowest demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH)
	touch $@

# One pytest worker per core (most tests run one CPU thread, or wait on a subprocess that does); WORKERS=0 runs serially
WORKERS ?= auto
test: install
	$(PY) -m pytest -q -n $(WORKERS) --dist loadgroup --durations=25

# The fast tests (-m "not slow") against the lowest versions pyproject.toml allows, in $(LOWEST) (git-ignored): uv
# resolves each direct dependency to its lower bound (--resolution lowest-direct; what they pull in gets the newest
# that fits) and syncs the venv to exactly that list, $(LOWEST)/requirements.txt. torch and torchvision stay at
# $(TORCH), installed with pip like `make install`: older torch wheels are gigabytes each, so torch>=2.4 and
# torchvision>=0.19 are the two bounds this does not exercise.
LOWEST ?= .venv-lowest
LOWEST_PY := $(LOWEST)/bin/python
UV := $(LOWEST)/uv/bin/uv
test-lowest:
	test -x $(LOWEST_PY) || $(PYTHON) -m venv $(LOWEST)
	test -x $(UV) || $(PYTHON) -m pip install -q --target $(LOWEST)/uv uv
	$(LOWEST_PY) -m pip install -q $(TORCH)
	printf '%s\n' $(TORCH) > $(LOWEST)/torch.txt
	rm -f $(LOWEST)/requirements.txt  # uv would prefer its pins to the bounds: resolve afresh
	$(UV) pip compile -q pyproject.toml --extra dev --resolution lowest-direct -c $(LOWEST)/torch.txt \
		--python $(LOWEST_PY) -o $(LOWEST)/requirements.txt
	$(UV) pip sync -q --python $(LOWEST_PY) $(LOWEST)/requirements.txt
	$(UV) pip install -q --python $(LOWEST_PY) --no-deps -e .
	@echo "lowest: $$(awk '/^[^ #]/{p=$$0} /ddim \(pyproject.toml\)/{print p}' $(LOWEST)/requirements.txt | paste -sd' ')"
	$(LOWEST_PY) -m pytest -q -m "not slow"

# The demo: train on the built-in digits (CPU, ~5 min), then the S × η sweep with tables and figures (~6 min), the
# solvers at a few NFE, and a searched τ for ddim and dpmpp_2m at NFE 5 and 10 (~1.5 min)
DEMO := outputs/demo
demo: install
	$(PY) train.py experiment=demo_train hydra.run.dir=$(DEMO)/train
	$(PY) evaluate.py sweep=demo_sweep ckpt=$(DEMO)/train/checkpoints/last.ckpt hydra.sweep.dir=$(DEMO)
	$(PY) evaluate.py sweep=demo_methods sampler.method=ddim,dpmpp_2m eval.recon_samples=0 \
		ckpt=$(DEMO)/train/checkpoints/last.ckpt hydra.sweep.dir=$(DEMO)/methods
# τ searched for this model (docs/samplers.md), then its cells beside quad's in the same table
	$(PY) -m ddim.trajectory_search -m sampler.method=ddim,dpmpp_2m sampler.steps=5,10 \
		ckpt=$(DEMO)/train/checkpoints/last.ckpt hydra.sweep.dir=$(DEMO)/search
	$(PY) evaluate.py sweep=demo_methods sampler.method=ddim,dpmpp_2m sampler.steps=5,10 sampler.skip=searched \
		sampler.trajectory_file=$(DEMO)/search eval.recon_samples=0 ckpt=$(DEMO)/train/checkpoints/last.ckpt \
		hydra.sweep.dir=$(DEMO)/methods 'hydra.sweep.subdir=searched_$${hydra.job.num}'
	@echo "sample grid: $(DEMO)/train/samples/last.png   checkpoint: $(DEMO)/train/checkpoints/last.ckpt"
	@echo "table: $(DEMO)/results.md   figures: $(DEMO)/*.png   solvers: $(DEMO)/methods/results.md"

bench: install
	PY=$(PY) bash bench/run_all.sh

clean:
	rm -rf outputs/demo .pytest_cache
