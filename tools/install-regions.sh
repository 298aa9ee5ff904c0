#!/bin/sh
# Install what `shopfloor regions` needs: etcd (the Debian package etcd-server; its system service is neither needed
# nor started: `regions up` runs etcd as a child with its data under var/regions) and Patroni with its etcd v3
# client (PyPI, into the Python that runs shopfloor). PostgreSQL server binaries (15+) must be present.
# Usage: tools/install-regions.sh [PYTHON]   (idempotent; default PYTHON: python3)
set -eu
PYTHON="${1:-python3}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-regions: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
if ! command -v etcd >/dev/null 2>&1; then
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
    $SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null
    }
fi
"$PYTHON" -c 'import patroni' 2>/dev/null || "$PYTHON" -m pip install -q 'patroni[etcd3]==4.1.5'
command -v etcd
"$PYTHON" -c 'from patroni.version import __version__; print("patroni", __version__)'
