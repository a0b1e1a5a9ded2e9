# Two commands for a fresh clone: `make run` (the demo) and `make test` (the test suite).
# Both create .venv/ with the pinned versions from requirements.txt first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench bench-quick lint clean setup-spark35 test-spark35

setup: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(PY) examples/demo.py

# The suite, plus every >>> example in the library's docstrings.
test: setup
	$(PY) -m pytest --doctest-modules spark_ray sql_ext tests

bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/run.py

bench-quick: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/run.py --quick

# The pyspark 3.5 line in its own .venv35/ (pins in requirements-spark35.txt): RayDP (Spark on Ray)
# needs pyspark <= 3.5.7. Tests of what 3.5 lacks skip, each with its reason (`-rs` lists them).
VENV35 := .venv35
PY35 := $(VENV35)/bin/python
STAMP35 := $(VENV35)/.installed

setup-spark35: $(STAMP35)

$(STAMP35): requirements-spark35.txt setup.py
	test -x $(PY35) || $(PYTHON) -m venv $(VENV35)
	$(PY35) -m pip install --quiet --upgrade pip
	$(PY35) -m pip install --quiet -r requirements-spark35.txt
	$(PY35) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP35)

test-spark35: setup-spark35
	$(PY35) -m pytest -rs tests

LINTED := spark_ray sql_ext tests bench examples setup.py

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy spark_ray sql_ext

clean:
	rm -rf $(VENV) build *.egg-info
