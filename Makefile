# Two commands for a fresh clone (see README.md):
#   make train   install on first use, then train the SST-2 CNN with GloVe
#   make test    install on first use, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Chainer's sdist must build against setuptools<70. pip < 25.3 applies
# PIP_CONSTRAINT inside its isolated build environment; pip >= 26 applies only
# PIP_BUILD_CONSTRAINT there (pip 25.3 reads both). Setting both works with any pip.
CONSTRAINTS := $(abspath constraints.txt)
DATA_DIR ?= $(abspath ../shared/data)
export DKNN_DATA_DIR ?= $(DATA_DIR)

.PHONY: install install-mpi install-bench install-explore train test test-mpi \
        test-browser check-docs grid grid-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PIP_CONSTRAINT=$(CONSTRAINTS) PIP_BUILD_CONSTRAINT=$(CONSTRAINTS) \
	    $(PY) -m pip install -q -r requirements.txt
	touch $@

# Optional extras: MPI for --distributed and data-parallel training (mpi4py
# and Open MPI from PyPI; mpiexec lands in .venv/bin), and the bench extras:
# the VADER lexicon (bench/human_alignment.py), cleanlab (bench/label_noise.py)
install-mpi: install
	$(PY) -m pip install -q -r requirements-mpi.txt

install-bench: install
	$(PY) -m pip install -q -r requirements-bench.txt

# The explorer (explore.py): uvicorn serves its own small app; selenium drives
# the browser test. requirements-explore.txt constrains itself with
# requirements.txt, so nothing it brings can upgrade numpy past 2
install-explore: install
	$(PY) -m pip install -q -r requirements-explore.txt

train: install
	$(PY) train_text_classifier.py --dataset stsa.binary --model cnn \
	    --epoch 5 --batchsize 32 --dropout 0.2 \
	    --word_vectors $(DKNN_DATA_DIR)/glove/glove.6B.50d.txt.gz

test: install
	$(PY) -m pytest -q -m "not mpi" tests

# The MPI jobs (mpiexec -n 2), after make install-mpi
test-mpi: install-mpi
	$(PY) -m pytest -q -m mpi tests

# The explorer's page in headless Chromium (apt-get install chromium
# chromium-driver); saves docs/explorer.png, from the make train run if any
test-browser: install-explore
	EXPLORE_SCREENSHOT=docs/explorer.png \
	    EXPLORE_RUN=$(wildcard result/stsa.binary_cnn/args.json) \
	    $(PY) -m pytest -q tests/test_explore.py -k browser

# Every documented command on the real data, each page in a fresh folder,
# its printed numbers against the page's (about 15 minutes; one page:
# make check-docs DOCS=docs/uncertainty.md)
check-docs: install
	$(PY) bench/check_docs.py --data-dir $(DKNN_DATA_DIR) $(if $(DOCS),--docs $(DOCS))

# The paper's table (RESULTS.md), and the same grid in smoke-test size
grid: install
	$(PY) bench/grid.py

grid-quick: install
	$(PY) bench/grid.py --quick

clean:
	rm -rf $(VENV)
