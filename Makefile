# sip-realtime-gateway: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
ARGS   ?=

# Debian packages the interop/e2e tests drive (real peers; iproute2 builds the network
# namespaces tests/security uses as foreign hosts). Installed when missing.
PEER_PKGS := sip-tester baresip-core kamailio kamailio-tls-modules tshark sox libsox-fmt-all \
             espeak-ng iproute2
PEER_BINS := sipp baresip kamailio tshark dumpcap sox espeak-ng ip
# Files of peers that are not commands (Kamailio's TLS module: SIP over TLS interop, issue 13).
PEER_FILES := /usr/lib/*/kamailio/modules/tls.so

.PHONY: run test soak lint format venv install install-test peers compiler bench clean

# The compiled jitter buffer, inbound and outbound paths and outbound tick (gateway/media/_jitter.c,
# _inbound.c, _outbound.c, _playout*.c, _tick.c, _clock.c) and the WebSocket frame builder
# (gateway/_wsframe.c) need a C compiler and the Python headers.
# BUILD_EXTENSION=yes (the default here) makes a failed compile an error, so `make test` always
# tests both jitter buffers; `make install BUILD_EXTENSION=` falls back to pure Python instead.
BUILD_EXTENSION ?= yes

$(VENV)/.installed: pyproject.toml setup.py $(wildcard gateway/media/_jitter*.[ch] gateway/media/_inbound*.[ch] gateway/media/_outbound*.[ch] gateway/media/_playout*.[ch] gateway/media/_tick.c gateway/media/_clock.c) gateway/_wsframe.c | compiler
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	SRG_BUILD_EXTENSION=$(BUILD_EXTENSION) $(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test]'
	touch $@

venv install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Install gcc and the Python headers (Debian) when missing: the compiled jitter buffer needs them.
compiler:
	@missing=""; command -v cc >/dev/null 2>&1 || missing="gcc libc6-dev"; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing build tools for the compiled jitter buffer:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## Start the gateway. Without OPENAI_API_KEY it runs against the built-in Realtime simulator.
run: $(VENV)/.installed
	$(VENV)/bin/sip-realtime-gateway run $(ARGS)

## Install the real SIP peers (Debian) when any is missing.
peers:
	@missing=""; for b in $(PEER_BINS); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	for f in $(PEER_FILES); do [ -e "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing peers (missing:$$missing)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  printf '#!/bin/sh\nexit 101\n' > /tmp/srg-policy-rc.d 2>/dev/null || true; \
	  [ -e /usr/sbin/policy-rc.d ] || $$SUDO install -m 755 /tmp/srg-policy-rc.d /usr/sbin/policy-rc.d; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PEER_PKGS); \
	fi

## Install everything the tests need (venv + Debian peers), then run the whole suite in two
## passes (tests/tools/two_passes.py): the `realtime` tests (gateway processes, real peers,
## timing; tests/tools/serial.py) one at a time, and beside them, at idle CPU priority (SCHED_IDLE:
## only the CPU they leave), the rest on 2 pytest-xdist workers. Both must pass. ARGS go to both
## passes (`make test ARGS="tests/live -k barge"`); TEST_OVERLAP=0 runs the passes one after the
## other (the real-time tests then alone on the machine: ~1000 s instead of ~820 s here).
TEST_OVERLAP ?= 1
test: $(VENV)/.installed-test peers
	PATH="$$PATH:/usr/sbin:/sbin" SRG_TEST_OVERLAP=$(TEST_OVERLAP) $(PY) -m tests.tools.two_passes $(ARGS)

## Long soak tests only.
soak: $(VENV)/.installed-test peers
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m pytest -m soak $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no soak tests selected"; rc=0; fi; exit $$rc

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-test
	@for f in bench/[!_]*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info gateway/media/_jitter.*.so gateway/_wsframe.*.so
