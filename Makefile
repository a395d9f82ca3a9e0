# Two entry points, each self-contained on a fresh machine with nothing but Python.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,ros,lerobot
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup demo test test-all clean sync-configs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/robolearn demo --out runs/demo

test: setup
	$(PY) -m pytest -m "not slow" -q --timeout=600

test-all: setup
	$(PY) -m pytest -q

# Copy the editable policies/, sim/ and hardware/ *.yaml into the package after editing one (stdlib only).
sync-configs:
	$(PYTHON) -m robolearn.shipped --sync

clean:
	rm -rf $(VENV) runs
