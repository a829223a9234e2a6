#!/usr/bin/env bash
# Makes sure pdftotext is on PATH for the tests that read the text of the
# report PDFs (accounting/report): installs the Debian package
# poppler-utils, which provides it, with apt-get where that is possible,
# else says what to install and fails.
set -euo pipefail
if command -v pdftotext >/dev/null 2>&1; then
  exit 0
fi
. "$(dirname "$0")/apt-install.sh"
if apt_install "pdftotext" poppler-utils; then
  command -v pdftotext >/dev/null 2>&1 && exit 0
fi
cat >&2 <<'MSG'
pdftotext is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install poppler-utils
  macOS:         brew install poppler
MSG
exit 1
