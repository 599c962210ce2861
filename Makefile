# mdtheory: one command from nothing to the paper PDF, one for the tests.
#   make all    set up, derive, quick experiments, figures, paper
#   make test   set up, run the test suite (what CI runs)
# Each step is skipped when its inputs did not change; the experiment runners
# are always called and skip finished runs themselves, so deleting a run folder
# (e.g. rm -rf results/parity/quick) and running make all retrains it.
# Writers leave a file untouched when its numbers did not change, so a second
# make all leaves git status clean.
PY ?= python3
STAMP := .cache/stamps
SRC := $(shell find mdtheory -name '*.py' 2>/dev/null)

.PHONY: all setup derive experiments figures paper test test-fast clean-paper FORCE
# the steps of `all` run in order: experiments must finish before the results are indexed
.NOTPARALLEL:
# a failed step leaves no target behind (e.g. a PDF refused for layout defects is rebuilt next time)
.DELETE_ON_ERROR:

all: setup derive experiments figures paper

$(STAMP)/setup: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	@mkdir -p $(STAMP) && touch $@
setup: $(STAMP)/setup

# --- theory -------------------------------------------------------------
# derive.json is replaced only when its content changed (cmp), like every writer.
$(STAMP)/derive: $(STAMP)/setup $(SRC)
	@mkdir -p results/theory $(STAMP)
	$(PY) -m mdtheory.derive --k 1 2 3 4 5 6 8 10 --window 0 0.2 --n 20 --delta 0.05 --json --provenance results/theory/derive.provenance.json > results/theory/derive.json.tmp
	@if cmp -s results/theory/derive.json.tmp results/theory/derive.json; then rm results/theory/derive.json.tmp; \
	else mv results/theory/derive.json.tmp results/theory/derive.json; fi
	$(PY) -m mdtheory.derive --latex paper/generated > /dev/null
	@touch $@
derive: $(STAMP)/derive

# --- quick experiments (minutes on 2 CPU cores; resumable) ---------------
# Always called: each runner skips the runs that are finished (seconds when all are).
experiments: $(STAMP)/setup
	$(PY) -m experiments.parity.run --preset quick
	$(PY) -m experiments.parity.summarize
	$(PY) -m experiments.lm.sweep --preset quick
	$(PY) -m experiments.lm.summarize

# --- figures from result files (no training) -----------------------------
# One line per result file (path, size, modification time), rewritten only when
# a line changed: figures and tables are redrawn exactly when a result file
# changed, appeared or disappeared (checkpoints excluded: they are not results).
$(STAMP)/results-index: FORCE
	@mkdir -p $(STAMP)
	@find results -type f ! -name ckpt.pt ! -name '*.tmp' -printf '%p %s %T@\n' 2>/dev/null | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# Each study's figures and tables live in its folder (experiments/<study>/figures.py, tables.py).
STUDY_PLOTS := $(wildcard experiments/*/figures.py experiments/*/tables.py experiments/*/outputs.py)
$(STAMP)/figures: $(STAMP)/setup $(SRC) $(STUDY_PLOTS) $(STAMP)/results-index
	$(PY) -m mdtheory.plots --results results --out figures
	@touch $@
figures: $(STAMP)/figures

# --- paper ---------------------------------------------------------------
# The latexmk transcript is shown only when the build fails; the build fails
# on any overfull box > 1 pt (text in the margin, a table off the page).
PAPER_SRC := $(shell find paper -name '*.tex' -o -name '*.bib' | grep -v -e '/build/' -e '/generated/')
paper/build/main.pdf: $(STAMP)/figures $(STAMP)/derive $(STAMP)/results-index $(STUDY_PLOTS) $(PAPER_SRC) scripts/build_paper.py
	$(PY) -m mdtheory.plots.paper_tables --results results --out paper/generated
	$(PY) scripts/build_paper.py paper
paper: paper/build/main.pdf

# --- tests ---------------------------------------------------------------
# the slow tests (a real SIGKILL + resume, a learning run, a sweep) add ~30 s: CI runs them
test: setup
	$(PY) -m pytest -q
test-fast: setup
	$(PY) -m pytest -m "not slow" -q

clean-paper:
	rm -rf paper/build
.PHONY: gpu-check
gpu-check:  # the GPU path in one command (no set-up: the device has no network); 3 files to $$OUT
	$(PY) -m experiments.gpu_check --out $(or $(OUT),.cache/gpu_check_out)
