#!/usr/bin/env bash
# Installs oidc-provider (npm, a certified OpenID provider) for the OAuth
# integration tests: npm ci from the committed package-lock.json in
# internal/testenv/oidcprovider. Idempotent: skips when node_modules already
# matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/lib.sh

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	apt_install nodejs npm
fi

dir=internal/testenv/oidcprovider
stamp="$dir/node_modules/.mailoauth-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules/oidc-provider" ]; then
	echo "oidc-provider already installed"
	exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
# oidc-provider 9 prints an "unsupported runtime" warning on node 20; it
# works there (the integration suite passes), so only a failed import stops.
(cd "$dir" && node --input-type=module -e 'await import("oidc-provider"); console.log("oidc-provider ok on node", process.versions.node)' 2>/dev/null)
