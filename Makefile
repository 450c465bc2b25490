# Two commands on a fresh Debian box with Python 3.11:
#   make demo   -> set up .venv and run the whole human-in-the-loop loop on the built-in sim
#   make test   -> set up .venv and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# where torch comes from: empty = pip's default (PyPI's Linux wheel bundles CUDA, several GB);
# on a CPU-only box: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
DEB_LIBS := libusb-1.0-0 libegl1 libgl1-mesa-dri libhidapi-hidraw0 libhidapi-libusb0 xvfb
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup deb demo test bench clean

deb:
	@missing=""; for p in $(DEB_LIBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian libraries:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BIN)/activate:
	@command -v $(PY) >/dev/null 2>&1 || { echo "make: no $(PY) on PATH; install Python 3.11 or run make PY=<python>"; exit 1; }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "make: $(PY) is older than Python 3.11; run make PY=python3.11 (or install it)"; exit 1; }
	@$(PY) -c 'import venv, ensurepip' >/dev/null 2>&1 || \
	  { echo "make: $(PY) cannot make a venv (no ensurepip); install python3.11-venv (Debian/Ubuntu) and run make again"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: deb $(VENV)/.installed

demo: setup
	$(BIN)/hilr demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/hilr bench sim

clean:
	rm -rf $(VENV) runs outputs *.egg-info
