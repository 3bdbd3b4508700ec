#!/usr/bin/env bash
# Issue 6's figures for the mailoauth proxy, one run side by side:
#   1. bulk IMAP FETCH throughput from a real Dovecot: direct TLS, socat raw
#      TLS relay, mailoauth proxy and (given its checkout) email-oauth2-proxy
#   2. login cost (connect to authenticated) proxy vs direct, the argon2id
#      first-login cost, NOOP latency p50/p99, proxy CPU while a client stops
#      reading, time for a client to hear that the server refused the token
#   3. IDLE (default 10,000) idle authenticated IMAP sessions through a proxy
#      process: RSS per session, CPU at idle, none dropped (a minimal TLS
#      IMAP upstream in the test: the integration Dovecot serves 1,000
#      clients per process by default)
#
#   bench/proxy-figures.sh [PATH-TO-email-oauth2-proxy-CHECKOUT]
#   MB=100 IDLE=10000 bench/proxy-figures.sh /work/ext/email-oauth2-proxy
#
# Needs Dovecot (.ci/setup.d/40-dovecot.sh), socat and, for
# email-oauth2-proxy, Debian's /usr/bin/python3 with python3-cryptography
# (.ci/setup.d/50-proxy-clients.sh). The checkout of
# simonrob/email-oauth2-proxy is only run from where it is, never copied.
# The idle figure raises RLIMIT_NOFILE to 3×IDLE+1000 (run as root, or with
# a hard limit that high). Not run by CI; takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILOAUTH_INTEGRATION=1 MAILOAUTH_BENCH=1 MAILOAUTH_BENCH_MB="${MB:-100}" MAILOAUTH_BENCH_IDLE="${IDLE:-10000}"
if [ -n "${1:-}" ]; then
	export MAILOAUTH_BENCH_EMAILPROXY="$(cd "$1" && pwd)"
fi
go test -count=1 -timeout 30m -run '^TestBenchProxy(Throughput|Latency|Idle)$' -v ./internal/proxy/ |
	grep -v '^=== RUN\|^--- PASS\|^PASS\|^ok'
