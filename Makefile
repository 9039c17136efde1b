# minift: `make test` and `make lab` are all a new machine needs (they create .venv on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which PyTorch to install into the virtual environment. The default pin is a CPU build on CI's disk.
# CPU-only laptop on Linux:  make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# CUDA workstation:          make test TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.minift-installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
SOLUTIONS := $(sort $(wildcard solutions/*.ipynb))

.PHONY: test lab course exercises pretrain bench setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[notebooks,test]"
	touch $(STAMP)

# Every test: unit tests, then every course and solution notebook with nbval in fast mode.
test: $(STAMP)
	MINIFT_MODE=fast MPLBACKEND=Agg $(BIN)/python -m pytest -q tests $(NOTEBOOKS) $(SOLUTIONS) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-execute every course notebook in full mode and keep the outputs (what is committed).
course: $(STAMP)
	MINIFT_MODE=full $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 $(NOTEBOOKS)

exercises: $(STAMP)
	$(BIN)/python -m minift.exercises solutions exercises

pretrain: $(STAMP)
	$(BIN)/python -m minift.pretrain

bench: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

clean-venv:
	rm -rf $(VENV)
