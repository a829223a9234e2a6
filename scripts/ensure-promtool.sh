#!/usr/bin/env bash
# Makes sure promtool is on PATH for the tests that check the alert rules
# (deploy/observability) and the service's /metrics: installs the Debian
# package prometheus, which provides it, with apt-get where that is
# possible, else says what to install and fails.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
  fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    echo "promtool not found: installing the prometheus package with apt-get" >&2
    $SUDO apt-get update -qq >/dev/null
    # Only promtool is wanted: the package's service is not started.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null 2>&1 && exit 0
  fi
fi
cat >&2 <<'MSG'
promtool is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install prometheus
  macOS:         brew install prometheus
or download a release from https://prometheus.io/download/ and put promtool on PATH.
MSG
exit 1
