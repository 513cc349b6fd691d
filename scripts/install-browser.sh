#!/usr/bin/env bash
# Debian's chromium for the end-to-end tests (tests/test_browser.py drives it with Playwright; Playwright's own
# browser download is not used). Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium: $CHROMIUM is installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: $CHROMIUM is missing and apt-get is not available; install Chromium with your package manager" >&2
    echo "          (or point CORTX_E2E_CHROMIUM at a Chromium binary) to run the browser tests" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "chromium: installing needs root: run 'apt-get install -y chromium' as root" >&2
        exit 1
    fi
fi

echo "chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
"$CHROMIUM" --version 2>/dev/null || true
