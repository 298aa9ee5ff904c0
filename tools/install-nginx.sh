#!/bin/sh
# Install nginx (the Debian package) for the edge cache: `shopfloor edge up` runs it as the current user with its own
# prefix under var/, so the package's system service is neither needed nor left running.
# Usage: tools/install-nginx.sh        (idempotent; prints the nginx binary it found or installed)
set -eu
if ! command -v nginx >/dev/null 2>&1; then
    sh "$(dirname "$0")/apt-install.sh" nginx
fi
command -v nginx
