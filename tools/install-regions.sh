#!/bin/sh
# Install what `shopfloor regions` needs: etcd (the Debian package etcd-server; its system service is neither needed
# nor started: `regions up` runs etcd as a child with its data under var/regions) and Patroni with its etcd v3
# client (PyPI, into the Python that runs shopfloor). PostgreSQL server binaries (15+) must be present.
# Usage: tools/install-regions.sh [PYTHON]   (idempotent; default PYTHON: python3)
set -eu
PYTHON="${1:-python3}"
if ! command -v etcd >/dev/null 2>&1; then
    sh "$(dirname "$0")/apt-install.sh" etcd-server
fi
"$PYTHON" -c 'import patroni' 2>/dev/null || "$PYTHON" -m pip install -q 'patroni[etcd3]==4.1.5'
command -v etcd
