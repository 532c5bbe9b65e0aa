# Every target builds .venv on a fresh machine that has only python3 and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench lint venv clean docs-images serve

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m stt_frames.demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

# docs/leaderboard.png and docs/widget_ab.png (the widget needs Debian's chromium: apt-get install chromium)
docs-images: $(STAMP)
	$(PY) docs/images.py

# the bundled OpenRouter-compatible server on http://127.0.0.1:8787/api/v1 (Ctrl-C stops it)
serve: $(STAMP)
	$(VENV)/bin/stt-frames serve

lint: $(STAMP)
	$(VENV)/bin/ruff check stt_frames tests bench
	$(VENV)/bin/ruff format --check stt_frames tests bench
	$(PY) -m mypy stt_frames

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
