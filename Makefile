# Set up a virtual environment and run the tests on every Keras backend.
#
#   make install   create .venv (when missing) and install the project
#   make test      run the test suite once per backend (jax, torch, tensorflow)
#   make demo      train a small model on the bundled text, grow it, generate
#
# TORCH_SPEC is installed before anything else so that the torch extra finds
# a CPU build already present instead of pulling a CUDA build of several GB.
# Elsewhere, point it at the CPU wheel index, for example:
#   make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BACKENDS ?= jax torch tensorflow
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[jax,torch,tensorflow,test]"
	touch $(STAMP)

test: install
	BACKENDS="$(BACKENDS)" PYTEST_ARGS="$(PYTEST_ARGS)" \
		tools/test_all_backends.sh $(BIN)/python

demo: install
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-nexus train \
		--output runs/demo --overwrite --stages 2 --steps-per-stage 150
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-nexus generate \
		--model runs/demo --prompt "ROMEO:" --max-length 200

clean:
	rm -rf $(VENV) runs .pytest_cache
