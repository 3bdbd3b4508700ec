#!/usr/bin/env bash
# Bulk IMAP throughput of the mailoauth proxy alone (the first of issue 6's
# figures; bench/proxy-figures.sh runs them all): FETCH of a MB-sized
# mailbox from a real Dovecot directly over TLS, through socat (plain → TLS
# relay), through `mailoauth proxy` and, given a checkout of
# simonrob/email-oauth2-proxy, through it; targets interleaved, 5 rounds.
#
#   bench/proxy-throughput.sh [MB] [PATH-TO-email-oauth2-proxy-CHECKOUT]
#
# Needs Dovecot (.ci/setup.d/40-dovecot.sh), socat and Debian's python3 with
# python3-cryptography (.ci/setup.d/50-proxy-clients.sh). Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${2:-}" ]; then
	export MAILOAUTH_BENCH_EMAILPROXY="$(cd "$2" && pwd)"
fi
MAILOAUTH_INTEGRATION=1 MAILOAUTH_BENCH=1 MAILOAUTH_BENCH_MB="${1:-100}" \
	go test -count=1 -run '^TestBenchProxyThroughput$' -v ./internal/proxy/ | grep -v '^=== RUN\|^--- PASS\|^PASS\|^ok'
