#!/usr/bin/env bash
# Bulk IMAP throughput of the mailoauth proxy (issue 6's first figure):
# FETCH of a MB-sized mailbox from a real Dovecot directly over TLS, through
# socat (plain → TLS relay) and through `mailoauth proxy`, best of three.
#
#   bench/proxy-throughput.sh [MB]      # default 100
#
# Needs Dovecot (.ci/setup.d/40-dovecot.sh) and socat
# (.ci/setup.d/50-proxy-clients.sh). Not run by CI.
#
# Not yet covered (skeleton): email-oauth2-proxy as a fourth target (take
# the path of a checkout as an argument, run it with python3 --no-gui;
# never commit its code), the 10,000-idle-connections memory figure, login
# cost and per-command latency.
set -euo pipefail
cd "$(dirname "$0")/.."
MAILOAUTH_INTEGRATION=1 MAILOAUTH_BENCH=1 MAILOAUTH_BENCH_MB="${1:-100}" \
	go test -count=1 -run '^TestBenchProxyThroughput$' -v ./internal/proxy/ | grep -v '^=== RUN\|^--- PASS\|^PASS\|^ok'
