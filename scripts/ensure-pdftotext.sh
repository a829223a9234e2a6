#!/usr/bin/env bash
# Makes sure pdftotext is on PATH for the tests that read the text of the
# report PDFs (accounting/report): installs the Debian package
# poppler-utils, which provides it, with apt-get where that is possible,
# else says what to install and fails.
set -euo pipefail
if command -v pdftotext >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
  fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    echo "pdftotext not found: installing the poppler-utils package with apt-get" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null
    command -v pdftotext >/dev/null 2>&1 && exit 0
  fi
fi
cat >&2 <<'MSG'
pdftotext is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install poppler-utils
  macOS:         brew install poppler
MSG
exit 1
