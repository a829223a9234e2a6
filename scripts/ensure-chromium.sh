#!/usr/bin/env bash
# Makes sure a headless Chromium is on PATH for the dashboard's browser
# tests (admin/dashboard): installs the Debian package chromium with
# apt-get where that is possible, else says what to install and fails.
set -euo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
. "$(dirname "$0")/apt-install.sh"
if apt_install "chromium" chromium; then
  command -v chromium >/dev/null 2>&1 && exit 0
fi
cat >&2 <<'MSG'
Chromium is needed by the dashboard's browser tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install chromium
  macOS:         brew install --cask chromium
or put Chrome on PATH as google-chrome.
MSG
exit 1
