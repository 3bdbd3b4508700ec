#!/usr/bin/env bash
# Installs real Dovecot 2.3 (Debian 12) for the mail integration tests
# (internal/testenv/dovecot starts it on 127.0.0.1 high ports as nobody), and
# Postfix only for /usr/sbin/smtp-sink, the relay target of Dovecot's
# submission service. Recipe: ../shared/reference/dovecot-oauth2.md §1.
# Idempotent and non-interactive.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

# "No configuration": Postfix writes no main.cf and never starts; we only
# want its smtp-sink binary.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt_install dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd postfix

# On hosts with systemd the package starts a system Dovecot on the standard
# ports; the tests use their own instance, so the system one only gets in
# the way (it does not share ports, but it is not ours to keep running).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now dovecot.service postfix.service >/dev/null 2>&1 || true
fi

test -x /usr/sbin/dovecot
test -x /usr/sbin/smtp-sink
/usr/sbin/dovecot --version
