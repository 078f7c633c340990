# One command each, on a fresh machine:  `make main`  and  `make test`.
# Both first run `setup`, which installs everything the project needs.
PYTHON ?= python3
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup test main paper benchmark accelerator-check constraints

setup:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  fi; \
	fi
	$(PYTHON) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"

# Lint, type-check, then the test suite.
test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q

# Re-pin constraints.txt to the versions installed here (after an upgrade
# that the suite passed with).
constraints:
	$(PYTHON) tools/constraints.py > constraints.txt

main: setup
	$(PYTHON) experiments/main_job.py

paper: setup
	$(PYTHON) experiments/paper.py --scale=cpu
	$(PYTHON) experiments/report.py --scale=cpu

benchmark: setup
	$(PYTHON) benchmarks/train_step.py

# On a GPU or TPU host: tests, multi-run benchmark and a short paper-scale
# program, all in one results file (benchmarks/accelerator_check.py).
accelerator-check: setup
	$(PYTHON) benchmarks/accelerator_check.py --out=results/benchmarks/$$(hostname)_accelerator_check.json
