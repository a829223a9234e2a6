#!/usr/bin/env bash
# Makes sure promtool is on PATH for the tests that check the alert rules
# (deploy/observability) and the service's /metrics: installs the Debian
# package prometheus, which provides it, with apt-get where that is
# possible, else says what to install and fails.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
. "$(dirname "$0")/apt-install.sh"
if apt_install "promtool" prometheus; then
  command -v promtool >/dev/null 2>&1 && exit 0
fi
cat >&2 <<'MSG'
promtool is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install prometheus
  macOS:         brew install prometheus
or download a release from https://prometheus.io/download/ and put promtool on PATH.
MSG
exit 1
