#!/bin/sh
# Install nginx (the Debian package) for the edge cache: `shopfloor edge up` runs it as the current user with its own
# prefix under var/, so the package's system service is neither needed nor left running.
# Usage: tools/install-nginx.sh        (idempotent; prints the nginx binary it found or installed)
set -eu
if command -v nginx >/dev/null 2>&1; then
    command -v nginx
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-nginx: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
# policy-rc.d answering 101 keeps the package from starting its own service during the install.
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
$SUDO apt-get install -y --no-install-recommends nginx >/dev/null || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y --no-install-recommends nginx >/dev/null
}
command -v nginx
