# Two entry points, each making its own virtual environment on a fresh machine:
#   make demo   installs flopcast and predicts the cost of the bundled example with the bundled model
#   make test   installs flopcast with its test extras and runs the test suite (what CI runs)
# torch==2.13.0 is installed first so pip takes the CPU wheel instead of a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := features/examples/tabular_mlp.py:build
# setuptools prints a boxed note on every editable install of a package-dir layout ("Editable installation.
# Please be careful with folders ..."): informational, nothing to act on; only that message is filtered.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip

.PHONY: demo test lint clean

$(BIN)/flopcast: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/flopcast
	$(PIP) install -q -e '.[test,all]'
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
