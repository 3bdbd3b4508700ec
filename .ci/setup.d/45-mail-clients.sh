#!/usr/bin/env bash
# Installs the real mail clients the CLI integration tests drive against
# Dovecot with tokens from `mailoauth token` (internal/cli, TestIntegration…):
# curl (IMAP/POP3/SMTP with --oauth2-bearer) and msmtp (passwordeval with
# auth xoauth2 and auth oauthbearer). Recipes: ../shared/reference/mail-clients.md.
# Idempotent and non-interactive.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

apt_install curl msmtp ca-certificates

curl --version | head -1
msmtp --version | head -1
