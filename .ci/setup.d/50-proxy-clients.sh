#!/usr/bin/env bash
# Real password-only mail clients for the proxy's integration tests
# (internal/proxy TestIntegrationDovecot, TestIntegrationClients): curl for
# IMAP/POP3/SMTP, Python's imaplib/poplib/smtplib, fetchmail (IMAP and
# POP3) and neomutt (IMAP, under script(1) from bsdutils for its terminal).
# For the bench/ scripts (not CI): socat (a raw TLS relay to compare
# against) and python3-cryptography (email-oauth2-proxy runs on Debian's
# /usr/bin/python3 with it). Dovecot itself comes from 40-dovecot.sh.
# Idempotent and non-interactive.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

apt_install curl python3 python3-cryptography socat fetchmail neomutt bsdutils ca-certificates

curl --version | head -1
python3 --version
fetchmail --version 2>/dev/null | head -1 || true
neomutt -v | head -1
