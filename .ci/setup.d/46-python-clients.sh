#!/usr/bin/env bash
# Installs the clients internal/e2e drives against Dovecot (which checks
# oidc-provider's tokens by introspection) with tokens from `mailoauth token`:
# Python 3's imaplib, poplib and smtplib (testdata/pyclients.py), mpop
# (passwordeval + auth xoauth2/oauthbearer), neomutt (batch send with
# smtp_oauth_refresh_command) and mbsync (PassCmd + AuthMechs XOAUTH2 through
# Cyrus SASL's kdexoauth2 plugin; openssl s_client as its TLS tunnel).
# curl and msmtp come from 45-mail-clients.sh.
# Recipes: docs/mail-clients.md. Idempotent and non-interactive.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

apt_install python3 ca-certificates openssl mpop neomutt isync libsasl2-modules-kdexoauth2

/usr/bin/python3 --version
mpop --version | head -1
neomutt -v | head -1
mbsync --version
ls /usr/lib/*/sasl2/libkdexoauth2.so
