# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies first (once; re-run when settings.ini changes).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test nbtest pytest bench sync readme
$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --progress-bar off -e ".[dev,judges]"
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/voicestyle demo

# the full suite: every notebook (tiny presets, `#| slow` cells skipped) and tests/
test: install nbtest pytest

nbtest: install
	cd nbs && ../$(BIN)/nbdev_test --n_workers 2 --timing

pytest: install
	$(BIN)/pytest -q tests

bench: install
	$(BIN)/voicestyle bench

# notebooks -> package, clean notebooks, index.ipynb -> README.md
sync: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/python tools/readme.py
