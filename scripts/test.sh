#!/usr/bin/env bash
# The README's test command: go test -race over the whole module.
# Extra arguments go to go test (CI uses them for the integration pass).
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -race -timeout 20m "$@" ./...
