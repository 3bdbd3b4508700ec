#!/usr/bin/env bash
# PostgreSQL for the tokens package's PostgreSQL store tests (conformance
# suite, herd and crash tests: go test -run Integration ./tokens/).
#
# Only the server binaries are needed: the tests start their own throwaway
# cluster with initdb/pg_ctl from /usr/lib/postgresql/*/bin, on 127.0.0.1 at a
# free high port, as the postgres user (CI runs as root), and delete it at the
# end. Debian's own cluster on port 5432 is not used. To test against another
# server instead, set MAILOAUTH_TEST_POSTGRES_URL (its mailoauth_* tables are
# dropped by the tests).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

apt_install postgresql

# The package creates the postgres user the tests run the server as.
id postgres >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
