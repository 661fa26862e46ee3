# Two entry points on a fresh clone: `make demo` (the main job) and `make test`.
# Both create .venv when missing and install torch 2.13.0 (the CPU build) before the package.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs docs-serve install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,analysis,llm,sweep,docs,trackers,development]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/plateau-lens demo --config tasks/mws.toml --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The site (mkdocs.yml): --strict makes every warning an error; the tutorials run during the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf runs/demo
