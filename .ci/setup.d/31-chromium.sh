#!/usr/bin/env bash
# Installs Debian's Chromium for the one real-browser test of the loopback
# sign-in (oauth TestIntegrationChromiumLoopback, driven by playwright-core,
# which 30-oidc-provider.sh installs with npm ci). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh
apt_install chromium
/usr/bin/chromium --version
