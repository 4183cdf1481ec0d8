# Two commands (see README.md):
#   make demo   - install into .venv and run the main job on the embedded default
#   make test   - install into .venv (with test extras) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.smci-installed
DEMO_REGION ?= small
DEMO_STORE ?= ./smci-demo

.PHONY: install demo test test-small clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/smci demo --region $(DEMO_REGION) --store $(DEMO_STORE)

# Runs the markers slow, s3, cluster (all but small_world, ~15 min more: make test-small): .ci/run calls exactly this.
# Two pytest-xdist workers: the tests on the tiny demo in one, first; the other files meanwhile (tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not small_world" -n 2 --dist loadfile --no-loadscope-reorder

# The acceptance run on the synthetic small world (smci demo --region small, every depth in both experiments).
test-small: $(STAMP)
	$(BIN)/python -m pytest tests -q -m small_world

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache
