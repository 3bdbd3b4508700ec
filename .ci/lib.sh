# Sourced by .ci/setup.d/*.sh. Helpers shared by the install steps.

# apt_install PKG...: installs the Debian packages that are missing, running
# apt-get update at most once per CI run.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ ! -e /tmp/.mailoauth-apt-updated ]; then
		apt-get update -qq && touch /tmp/.mailoauth-apt-updated
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
