# Entry points: `make demo`, `make test` (what .ci/run runs), `make lint`, `make bench`.
# `make setup` is idempotent: it installs Debian packages only when a tool is missing and
# (re)creates the venv only when it is missing or pyproject.toml changed.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.prober-installed

# Real peers the integration tests run against (tests/peers) and tools they use.
# The STARTTLS servers (tests/peers/starttls_servers.py: Exim, Dovecot, vsftpd, slapd,
# Prosody, PostgreSQL) run as test-scoped instances; their system daemons are never started
# (see POLICY_RC below).
APT_PACKAGES  := openssl ca-certificates curl nginx-light libnginx-mod-stream haproxy \
                 gnutls-bin iproute2 nftables iptables tcpdump nmap coreutils tshark \
                 wget libnss3-tools nodejs golang-go gcc openjdk-17-jdk-headless chromium chromium-driver firefox-esr \
                 redis-server exim4-daemon-light dovecot-imapd dovecot-pop3d slapd ldap-utils prosody \
                 vsftpd postgresql
REQUIRED_BINS := openssl curl nginx haproxy gnutls-cli ip nft iptables tcpdump nmap stdbuf tshark editcap mergecap \
                 wget tstclnt certutil node go java javac chromium chromedriver firefox-esr redis-server \
                 exim4 dovecot slapd prosody vsftpd pg_ctlcluster
# While the packages install, invoke-rc.d asks this script and is told "no" (exit 101), so
# no system mail, IMAP, LDAP, XMPP, FTP, database or redis daemon starts; an existing one is kept.
POLICY_RC     := /usr/sbin/policy-rc.d
STREAM_MODULE := /usr/lib/nginx/modules/ngx_stream_module.so

.PHONY: setup system-deps venv test lint demo bench fuzz lab-up lab-down

setup: system-deps venv

system-deps:
	@missing=""; \
	for b in $(REQUIRED_BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	[ -e $(STREAM_MODULE) ] || missing="$$missing $(STREAM_MODULE)"; \
	if [ -z "$$missing" ]; then echo "setup: system tools present"; exit 0; fi; \
	echo "setup: missing:$$missing -> apt-get install $(APT_PACKAGES)"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	else echo "setup: need root to install: $(APT_PACKAGES)" >&2; exit 1; fi; \
	nginx_up() { [ -s /run/nginx.pid ] && $$SUDO kill -0 "$$(cat /run/nginx.pid)" 2>/dev/null; }; \
	was_up=no; if nginx_up; then was_up=yes; fi; \
	redis_was_up=no; if command -v redis-cli >/dev/null 2>&1 && redis-cli -p 6379 ping >/dev/null 2>&1; then redis_was_up=yes; fi; \
	own_rc=no; if [ ! -e $(POLICY_RC) ]; then \
		printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $(POLICY_RC) >/dev/null && \
		$$SUDO chmod 755 $(POLICY_RC) && own_rc=yes; fi; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(APT_PACKAGES) >/dev/null; rc=$$?; \
	if [ $$own_rc = yes ]; then $$SUDO rm -f $(POLICY_RC); fi; \
	[ $$rc = 0 ] || exit 1; \
	if [ $$was_up = no ] && nginx_up; then \
		echo "setup: stopping the system nginx the package install started (tests run their own)"; \
		$$SUDO service nginx stop >/dev/null 2>&1 || true; \
		if nginx_up; then $$SUDO kill "$$(cat /run/nginx.pid)" || true; fi; \
	fi; \
	redis_up() { $$SUDO redis-cli -p 6379 ping >/dev/null 2>&1; }; \
	if [ $$redis_was_up = no ] && redis_up; then \
		echo "setup: stopping the system redis-server the package install started (tests run their own)"; \
		$$SUDO service redis-server stop >/dev/null 2>&1 || true; \
		if redis_up; then $$SUDO redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true; fi; \
	fi; \
	for b in $(REQUIRED_BINS); do command -v $$b >/dev/null 2>&1 || { echo "setup: $$b still missing" >&2; exit 1; }; done; \
	[ -e $(STREAM_MODULE) ] || { echo "setup: $(STREAM_MODULE) still missing" >&2; exit 1; }

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m compileall -q prober
	@touch $@

# pytest exit code 5 means "no tests collected": a test run that ran nothing is a failure.
# PYTEST_ARGS narrows a local run, e.g. `make test PYTEST_ARGS=tests/net/test_peers.py`.
PYTEST_ARGS ?=
# The deploy gate runs first (prober check against the demo endpoint, exactly as a
# user's pipeline would), then the user install (the wheel, built and installed into a
# fresh venv outside the checkout, running the README's commands from an empty
# directory), then the test suite; pytest's summary stays the last line.
test: setup
	bash .ci/gate.sh
	bash .ci/user_install.sh
	@set +e; $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: venv
	$(VENV)/bin/ruff check prober tests bench scripts setup.py
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_layers.py
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --explicit-package-bases tests bench scripts

demo: setup
	$(PY) -m prober demo

bench: setup
	$(PY) bench/startup.py
	$(PY) bench/run.py
	$(PY) bench/logs.py
	$(PY) bench/policy.py
	$(PY) bench/report.py
	$(PY) bench/diagnose_lab.py
	$(PY) bench/fleet.py

# Long fuzzing (not part of `make test`, which runs 10,000 seeded cases per target): each
# target of tests/fuzz in its own process, coverage-guided by atheris when it is installed
# (`.venv/bin/pip install atheris`), else seeded (which also reports the line coverage of
# the flight reader); FUZZ_CASES per target.
FUZZ_CASES ?= 1000000
fuzz: venv
	$(PY) scripts/fuzz.py --cases $(FUZZ_CASES) --coverage --json out/fuzz.json \
		--engine $$($(PY) -c 'import atheris' 2>/dev/null && echo atheris || echo seeded)

# The network-namespace lab of docs/lab.md (root only): every failure mode, to try by hand.
lab-up: setup
	$(PY) scripts/lab.py up

lab-down:
	$(PY) scripts/lab.py down
