#!/usr/bin/env bash
# Makes sure redis-server and redis-cli (which joins the test Redis Cluster)
# are on PATH for the tests: installs them with apt-get where that is
# possible, else says what to install and fails.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
if [ -n "${WORKER_TEST_REDIS_URL:-}" ]; then
  exit 0 # tests use an existing server
fi
. "$(dirname "$0")/apt-install.sh"
if apt_install "redis-server" redis-server; then
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && exit 0
fi
cat >&2 <<'MSG'
redis-server is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install redis-server
  macOS:         brew install redis
or point the tests at a running server: WORKER_TEST_REDIS_URL=redis://127.0.0.1:6379/15
MSG
exit 1
