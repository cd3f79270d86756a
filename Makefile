# Two entry points, each making its own virtual environment on a fresh machine:
#   make demo   installs flopcast and predicts the cost of the bundled example with the bundled model
#   make test   installs flopcast with its test extras and runs the test suite (what CI runs)
# torch==2.13.0 is installed first so pip takes the CPU wheel instead of a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := features/examples/tabular_mlp.py:build

.PHONY: demo test lint clean

$(BIN)/flopcast: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/flopcast
	$(BIN)/pip install -q -e '.[test,onnx,tf]'
	touch $@

demo: $(BIN)/flopcast
	$(BIN)/flopcast predict $(EXAMPLE) --batch-size 512 --hardware h200,h100,local \
		--dataset-size 10000000 --epochs 3 --country FR

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
