# mdtheory: one command from nothing to the paper PDF, one for the tests.
#   make all    set up, derive, quick experiments, figures, paper
#   make test   set up, run the test suite (what CI runs)
# Each step is skipped when its outputs are newer than its inputs.
PY ?= python3
STAMP := .cache/stamps
SRC := $(shell find mdtheory -name '*.py' 2>/dev/null)
EXP := $(shell find experiments -name '*.py' 2>/dev/null)

.PHONY: all setup derive experiments figures paper test test-fast clean-paper

all: setup derive experiments figures paper

$(STAMP)/setup: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	@mkdir -p $(STAMP) && touch $@
setup: $(STAMP)/setup

# --- theory -------------------------------------------------------------
results/theory/derive.json paper/generated/theory.tex &: $(STAMP)/setup $(SRC)
	@mkdir -p results/theory
	$(PY) -m mdtheory.derive --k 1 2 3 4 5 6 8 10 --window 0 0.2 --n 20 --delta 0.05 --json --provenance results/theory/derive.provenance.json > results/theory/derive.json.tmp
	mv results/theory/derive.json.tmp results/theory/derive.json
	$(PY) -m mdtheory.derive --latex paper/generated
derive: results/theory/derive.json paper/generated/theory.tex

# --- quick experiments (minutes on 2 CPU cores; resumable) ---------------
$(STAMP)/experiments: $(STAMP)/setup $(SRC) $(EXP)
	$(PY) -m experiments.parity.run --preset quick
	$(PY) -m experiments.parity.summarize
	$(PY) -m experiments.lm.sweep --preset quick
	@mkdir -p $(STAMP) && touch $@
experiments: $(STAMP)/experiments

# --- figures from result files (no training) -----------------------------
$(STAMP)/figures: $(STAMP)/setup $(SRC) $(shell find results -type f 2>/dev/null)
	$(PY) -m mdtheory.plots --results results --out figures
	@mkdir -p $(STAMP) && touch $@
figures: $(STAMP)/figures

# --- paper ---------------------------------------------------------------
paper/build/main.pdf: $(STAMP)/figures paper/generated/theory.tex $(shell find paper -name '*.tex' -o -name '*.bib' | grep -v '/build/')
	$(PY) -m mdtheory.plots.paper_tables --results results --out paper/generated
	cd paper && latexmk -pdf -interaction=nonstopmode -halt-on-error -outdir=build main.tex
paper: paper/build/main.pdf

# --- tests ---------------------------------------------------------------
# the slow tests (a real SIGKILL + resume, a learning run, a sweep) add ~30 s: CI runs them
test: setup
	$(PY) -m pytest -q
test-fast: setup
	$(PY) -m pytest -m "not slow" -q

clean-paper:
	rm -rf paper/build
