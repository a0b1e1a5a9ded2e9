# Two commands for a fresh clone: `make run` (the demo) and `make test` (the test suite; `make test-fast` for
# a developer's loop).
# Both create .venv/ with the pinned versions from requirements.txt first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast bench bench-quick lint clean setup-spark35 test-spark35

setup: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(PY) examples/demo.py

# Every pytest run here: -rs lists each skip with its reason; --require-tests (tests/conftest.py) makes a run
# in which no test ran (nothing selected, or everything skipped) exit 5, and NO_TESTS says so and fails.
# PYTEST_ARGS: more options, e.g. `make test PYTEST_ARGS=--durations=40` (CI's log keeps the slowest).
PYTEST_ARGS ?=
PYTEST_OPTS = -rs --require-tests $(PYTEST_ARGS)
NO_TESTS = || { status=$$?; [ $$status -ne 5 ] || echo "$@: pytest ran no test (exit 5)" >&2; exit $$status; }

# The suite (every tier), plus every >>> example in the library's docstrings.
test: setup
	$(PY) -m pytest $(PYTEST_OPTS) --doctest-modules spark_ray sql_ext tests $(NO_TESTS)

# A developer's loop, a few minutes: the unit tier, the doctests and a quick slice of paths and sql
# (the modules marked `fast` in tests/conftest.py's MODULES; README, "Testing").
test-fast: setup
	$(PY) -m pytest $(PYTEST_OPTS) -m fast --doctest-modules spark_ray sql_ext tests $(NO_TESTS)

bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/run.py

bench-quick: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/run.py --quick

# The pyspark 3.5 line in its own .venv35/ (pins in requirements-spark35.txt): RayDP (Spark on Ray)
# needs pyspark <= 3.5.7. It runs what differs there (the modules marked `spark35` in tests/conftest.py:
# compat and fallbacks, RayDP, the conformance matrix), not the whole suite again; tests of what 3.5 lacks
# skip, each with its reason (`-rs` lists them).
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
	$(PY35) -m pytest $(PYTEST_OPTS) -m spark35 tests $(NO_TESTS)

LINTED := spark_ray sql_ext tests bench examples setup.py

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy spark_ray sql_ext
	$(VENV)/bin/mypy tests/processes.py $(wildcard tests/*_child.py)  # the child programs tests run

clean:
	rm -rf $(VENV) build *.egg-info
