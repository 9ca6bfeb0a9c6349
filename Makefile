# Two entry points for a new user (README): `make demo` and `make test`.
# Each creates the pinned environment in .venv if it is missing, then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAX_PLATFORMS ?= cpu
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test test-fast env clean-demo

$(STAMP): constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,tpu]'
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xfer-t5x demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean-demo:
	rm -rf demo_out
