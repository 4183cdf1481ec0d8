# Two commands (see README.md):
#   make demo   - install into .venv and run the main job on the embedded default
#   make test   - install into .venv (with test extras) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.smci-installed
DEMO_REGION ?= small
DEMO_STORE ?= ./smci-demo

.PHONY: install demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/smci demo --region $(DEMO_REGION) --store $(DEMO_STORE)

# Runs every marker (slow, s3, cluster): .ci/run calls exactly this.
test: $(STAMP)
	$(BIN)/python -m pytest tests -q

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache
