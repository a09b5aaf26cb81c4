# Set-up is part of every target: a fresh machine needs nothing but Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# the suite: two pytest workers with one thread each suit a 2-core machine, loaded or not (tests/conftest.py);
# tests sharing an expensive module fixture are kept on one worker with @pytest.mark.xdist_group
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

.PHONY: demo test test-fast test-paper install clean benchmark

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/zoo fit --config configs/quickstart.yaml

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)  # the edit loop: no subprocess training jobs, no faithful checks (under 5 minutes)
	$(PYTEST) -m "not slow and not faithful and not paper_scale"

test-paper: $(STAMP)  # the runs too long for make test (marker paper_scale)
	$(PYTEST) -m paper_scale

benchmark: $(STAMP)
	$(BIN)/python benchmarks/lightning_overhead.py

clean:
	rm -rf $(VENV) runs lightning_logs wandb
