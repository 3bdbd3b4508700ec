#!/usr/bin/env bash
# Real password-only mail clients for the proxy's integration tests
# (internal/proxy TestIntegrationDovecot): curl for IMAP/POP3/SMTP and
# Python's imaplib/poplib/smtplib. socat is for the bench/ throughput script
# (a raw TLS relay to compare against). Dovecot itself comes from
# 40-dovecot.sh. Idempotent and non-interactive.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

apt_install curl python3 socat ca-certificates

curl --version | head -1
python3 --version
