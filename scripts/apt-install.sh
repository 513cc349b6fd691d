#!/usr/bin/env bash
# apt-install.sh WHAT PACKAGE...: install Debian packages (as root, or through sudo), for the install-*.sh scripts.
# WHAT names the caller in messages. The package lists are refreshed only when a package has no install candidate
# (a fresh machine), and failures of other configured sources are not fatal as long as Debian's mirror answers.
# APT_ARCHIVES (optional): a directory to keep the downloaded .debs in, so a reinstall reuses them.
set -euo pipefail

what=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$what: apt-get is not available; install $* with your package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "$what: installing needs root: apt-get install -y $*" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
options=(-y -qq --no-install-recommends)
if [ -n "${APT_ARCHIVES:-}" ]; then
    $SUDO mkdir -p "$APT_ARCHIVES/partial"
    options+=(-o "Dir::Cache::archives=$APT_ARCHIVES")
fi
for package in "$@"; do
    if ! apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        $SUDO apt-get update -qq || true
        break
    fi
done
echo "$what: installing $* (Debian's packages)"
$SUDO apt-get install "${options[@]}" "$@"
