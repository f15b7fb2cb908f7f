#!/usr/bin/env bash
# Set up Vigil and run it on the embedded profile (no servers) with the simulated fleet sending
# demo telemetry, so alerts appear within a minute. Extra arguments go to `vigil up`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/vigil up --demo "$@"
