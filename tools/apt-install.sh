#!/bin/sh
# Install Debian packages for a tool shopfloor runs as the current user's child process (nginx, etcd): the
# packages' own system services are neither needed nor started (a policy-rc.d answering 101 holds them back
# during the install and is removed afterwards). Refreshes the package lists once if the first try fails.
# Usage: tools/apt-install.sh PACKAGE [PACKAGE ...]
set -eu
[ "$#" -ge 1 ] || { echo "usage: tools/apt-install.sh PACKAGE [PACKAGE ...]" >&2; exit 2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "apt-install: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ADDED_POLICY=1
fi
cleanup() { if [ "$ADDED_POLICY" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a boot-time update, a second tool's install) holds the dpkg lock: wait for it, do not fail.
APT="apt-get -o DPkg::Lock::Timeout=300"
$SUDO $APT install -y --no-install-recommends "$@" >/dev/null || {
    $SUDO $APT update -q >/dev/null
    $SUDO $APT install -y --no-install-recommends "$@" >/dev/null
}
