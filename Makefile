# ksmlab: GNU make targets. `make lab` to work, `make test` to check.
#
#   make lab     create .venv on first use (JupyterLab and the kit only), then open JupyterLab on notebooks/
#   make venv    create .venv with everything a developer needs (test tools, jupytext, playwright)
#   make test    pytest over tests/ plus nbval over notebooks/ and solutions/
#   make bench   run benchmarks/run.py
#   make properties   the long property runs (crc32 vs jhash2 lockstep, PROPERTY_EXAMPLES per mode)
#   make fuzz    the long engine fuzz: FUZZ_SEQUENCES (10,000) random sequences per mode, shadow model, real SIGINTs
#   make screenshots  every lesson in a real browser, one screenshot per screenful (tests/screenshots/)
#   make notebooks    write notebooks/ and solutions/ from their .src/ sources (jupytext), execute them, then exercises/
#   make exercises    rewrite exercises/ from the masters in solutions/
#   make solutions    rebuild and re-execute solutions/*.ipynb from solutions/.src (jupytext), then exercises/
#   make course-time  execute every lesson as Run All would; print the time and the kernel's memory
#   make reading-time per lesson: prose words, code lines and cells, output lines, Run All time, and an estimated reading time
#   make lock    regenerate constraints.txt from the newest releases (temp venv)
#   make clean   remove .venv and build/test leftovers
#
# Variables: PYTHON (interpreter that creates the venv), PYTEST_ARGS, LAB_ARGS, BENCH_ARGS.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := lab,test,browser
# `make lab` alone installs only the `lab` extra: a student's install has no test or browser packages.
LAB_STAMP := $(VENV)/.installed-lab
LAB_EXTRAS := lab
# JupyterLab's settings for this kit's server: no "would you like news?" prompt, no update check.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help venv $(VENV) lab test fuzz bench lock clean notebooks exercises solutions course-time reading-time properties screenshots

help:
	@sed -n '3,18s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

# --- the virtual environment ------------------------------------------------
# Created with $(PYTHON) on first use; (re)installed only when pyproject.toml,
# constraints.txt or the compiled helper's build (setup.py, ksmlab/_jhash.c) is newer
# than the stamp. The editable install compiles ksmlab/_jhash.c when a C compiler and
# Python's headers are present, and skips it (pure Python, same values) when not.
venv $(VENV): $(STAMP)

$(STAMP): pyproject.toml constraints.txt setup.py ksmlab/_jhash.c
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@ $(LAB_STAMP)

# A student's environment: the kit and JupyterLab (the `lab` extra), nothing for tests.
# Satisfied by the full install too ($(STAMP) touches this stamp).
$(LAB_STAMP): pyproject.toml constraints.txt setup.py ksmlab/_jhash.c
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(LAB_EXTRAS)]"
	@touch $@

# JupyterLab reads overrides.json from its application settings folder (inside the venv)
# as the defaults of every user setting; jupyterlab-overrides.json is the kit's copy.
$(LAB_OVERRIDES): jupyterlab-overrides.json $(LAB_STAMP)
	@mkdir -p $(dir $@)
	cp jupyterlab-overrides.json $@

# --- JupyterLab ---------------------------------------------------------------
# As root (containers, CI) Jupyter refuses to start without --allow-root; on a
# Linux machine without a display there is no browser to open.
LAB_FLAGS :=
ifeq ($(shell id -u 2>/dev/null),0)
LAB_FLAGS += --allow-root
endif
ifeq ($(shell uname -s 2>/dev/null),Linux)
ifeq ($(strip $(DISPLAY)$(WAYLAND_DISPLAY)),)
LAB_FLAGS += --no-browser
endif
endif

# The server's root is the repository, so exercises/ and solutions/ are a click
# away; the browser opens on notebooks/. allow_hidden: with jupytext installed (make venv),
# saving a notebook also writes its source in the hidden .src/ folder beside it, which the
# server must be allowed to read and write; the file browser still hides it.
lab: $(LAB_STAMP) $(LAB_OVERRIDES)
	$(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  --LabApp.news_url=None --ContentsManager.allow_hidden=True $(LAB_ARGS)

# --- tests ----------------------------------------------------------------------
# Jupyter, IPython and matplotlib keep config and state under .venv/home during
# tests, so `make test` neither reads nor writes the user's home directory.
# KSMLAB_PROGRESS=0: no progress bar (ksmlab.views.progress) in a test's or a
# stored notebook's output.
TEST_HOME := $(CURDIR)/$(VENV)/home
TEST_ENV := \
	JUPYTER_CONFIG_DIR=$(TEST_HOME)/jupyter/config \
	JUPYTER_DATA_DIR=$(TEST_HOME)/jupyter/data \
	JUPYTER_RUNTIME_DIR=$(TEST_HOME)/jupyter/runtime \
	JUPYTERLAB_SETTINGS_DIR=$(TEST_HOME)/jupyter/lab/settings \
	JUPYTERLAB_WORKSPACES_DIR=$(TEST_HOME)/jupyter/lab/workspaces \
	JUPYTER_PLATFORM_DIRS=1 \
	IPYTHONDIR=$(TEST_HOME)/ipython \
	MPLCONFIGDIR=$(TEST_HOME)/matplotlib \
	PYDEVD_DISABLE_FILE_VALIDATION=1 \
	KSMLAB_PROGRESS=0

# Folders whose notebooks nbval runs: only those that hold an .ipynb (outside
# .ipynb_checkpoints). exercises/ is left out on purpose: it has blanks to fill in.
NOTEBOOK_DIRS = $(strip $(foreach d,notebooks solutions,$(if $(shell find $(d) -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null | head -n 1),$(d))))
NBVAL_ARGS = $(if $(NOTEBOOK_DIRS),--nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg $(NOTEBOOK_DIRS))

# nbgrader, for tests/test_nbgrader.py (it runs the real generate_assignment on solutions/), lives
# in a venv of its own: its pins are not the lab's. Built once, reused while its constraints hold.
# Defined before the test rule: make expands a rule's prerequisites when it reads the rule.
NBGRADER_VENV  := $(VENV)/nbgrader
NBGRADER_STAMP := $(NBGRADER_VENV)/.installed
$(NBGRADER_STAMP): constraints-nbgrader.txt
	@test -x $(NBGRADER_VENV)/bin/python || $(PYTHON) -m venv $(NBGRADER_VENV)
	$(NBGRADER_VENV)/bin/python -m pip install --quiet -c constraints-nbgrader.txt nbgrader
	@touch $@

# pytest exits 5 when it collected nothing: that is a broken test setup, so it
# fails the target with a message instead of passing quietly.
test: $(STAMP) $(LAB_OVERRIDES) $(NBGRADER_STAMP)
	@mkdir -p $(TEST_HOME)
	$(TEST_ENV) $(BIN)/python -m pytest tests/ $(NBVAL_ARGS) $(PYTEST_ARGS) || { \
	  rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; \
	  exit $$rc; }

# --- long property runs ----------------------------------------------------------
# make test runs a few examples of each; this runs PROPERTY_EXAMPLES per mode and prints
# hypothesis's statistics (how many examples passed).
PROPERTY_EXAMPLES ?= 2000
properties: $(STAMP)
	KSMLAB_LOCKSTEP_EXAMPLES=$(PROPERTY_EXAMPLES) $(BIN)/python -m pytest tests/test_checksum_lockstep.py -q \
	  -p no:cacheprovider --hypothesis-show-statistics

# --- the long property run (issue 8) ------------------------------------------------
# Random operation sequences in both modes against a shadow model, validate() after every
# step, real SIGINTs at random steps (tests/fuzz_engine.py); `make test` runs 40 per mode.
FUZZ_SEQUENCES ?= 10000
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_engine.py --sequences $(FUZZ_SEQUENCES) $(FUZZ_ARGS)

# Every lesson in the browser, one screenshot per screenful into tests/screenshots/LESSON/NN.png.
screenshots: $(STAMP) $(LAB_OVERRIDES)
	@mkdir -p $(TEST_HOME)
	KSMLAB_SCREENSHOTS=all $(TEST_ENV) $(BIN)/python -m pytest tests/test_browser.py -q $(PYTEST_ARGS)

# --- benchmarks -------------------------------------------------------------------
bench: $(STAMP)
	@test -f benchmarks/run.py || { echo "make bench: benchmarks/run.py does not exist yet" >&2; exit 1; }
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# --- lock file ----------------------------------------------------------------------
# Installs the kit with its lab and test extras, bounded only by tools/lock-floor.txt
# (what keeps the lock installable on Python 3.11.0-3.11.4), into a throw-away
# venv and records every installed distribution (except pip itself and the kit).
lock:
	@set -euo pipefail; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "make lock: installing .[$(EXTRAS)] into a fresh venv in $$tmp"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet -c tools/lock-floor.txt -e ".[$(EXTRAS)]"; \
	{ \
	  echo "# ksmlab lock file: the exact version of every package that"; \
	  echo "#   pip install -e \".[$(EXTRAS)]\""; \
	  echo "# installs, resolved on CPython $$("$$tmp/venv/bin/python" -c 'import platform; print(platform.python_version(), platform.system(), platform.machine())')."; \
	  echo "# Used as a constraints file: pip install -c constraints.txt -e \".[$(EXTRAS)]\"."; \
	  echo "# Resolved under tools/lock-floor.txt, so it installs on every Python 3.11 (Debian 12's 3.11.2 too)."; \
	  echo "# Platform-only packages of other systems (e.g. pywinpty, colorama on Windows)"; \
	  echo "# are not listed and install unpinned there."; \
	  echo "# Regenerate with: make lock   (fresh temporary venv + pip freeze --exclude-editable),"; \
	  echo "# then update the pins in environment.yml to match (tests/test_environment.py checks)."; \
	  "$$tmp/venv/bin/python" -m pip freeze --exclude-editable; \
	} > constraints.txt.new; \
	mv constraints.txt.new constraints.txt; \
	echo "make lock: wrote constraints.txt ($$(grep -c '==' constraints.txt) pins)"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis benchmarks/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --- notebooks ----------------------------------------------------------------------
# Each notebook's source is a jupytext percent-format script in .src/ beside it
# (notebooks/.src/NN-slug.py -> notebooks/NN-slug.ipynb, solutions/ likewise).
# tools/notebooks.py writes each notebook from its source with stable cell ids and
# JupyterLab's kernelspec, executes it in its folder (no timing metadata: it would
# change every stored notebook on every run), then the exercises are rewritten from
# the executed masters. `make notebooks NB=notebooks/.src/04-pages-and-mappings.py`
# builds one. tests/test_notebooks.py checks that every pair agrees.
NB ?=
notebooks: $(STAMP)
	@mkdir -p $(TEST_HOME)
	$(TEST_ENV) $(BIN)/python tools/notebooks.py build $(NB)
	$(MAKE) exercises

# The masters alone (solutions/.src -> solutions/*.ipynb, executed), then exercises/.
solutions: $(STAMP)
	@mkdir -p $(TEST_HOME)
	$(TEST_ENV) $(BIN)/python tools/notebooks.py build solutions/.src/*.py
	$(MAKE) exercises

# The students' notebooks: the masters with their answers blanked (ksmlab/exercises.py).
exercises: $(STAMP)
	$(BIN)/python -m ksmlab.exercises

# The whole series, executed as a student's Run All would (fresh kernel per notebook, nothing
# written back): wall time, kernel CPU and peak kernel memory, per notebook and in total.
course-time: $(STAMP)
	@mkdir -p $(TEST_HOME)
	$(TEST_ENV) $(BIN)/python scripts/course_time.py

# An estimate of each lesson's reading time from what it shows (tools/reading_time.py states its
# rates); it executes every lesson once, as course-time does, for the Run All column.
reading-time: $(STAMP)
	@mkdir -p $(TEST_HOME)
	$(TEST_ENV) $(BIN)/python tools/reading_time.py $(READING_ARGS)
