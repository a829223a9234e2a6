#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, postgres) can be found by
# the tests (internal/pgtest): on PATH or in Debian's
# /usr/lib/postgresql/<version>/bin. Installs the Debian package postgresql
# with apt-get where that is possible (its own cluster is not started), else
# says what to install and fails.
set -euo pipefail
if [ -n "${WORKER_TEST_DATABASE_URL:-}" ]; then
  exit 0 # tests use an existing server
fi
found() {
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then return 0; fi
  done
  return 1
}
if found; then
  exit 0
fi
. "$(dirname "$0")/apt-install.sh"
if apt_install "PostgreSQL server binaries" postgresql; then
  found && exit 0
fi
cat >&2 <<'MSG'
The PostgreSQL server (initdb, postgres) is needed by the tests and could not be installed automatically.
Install it and run again:
  Debian/Ubuntu: sudo apt-get install postgresql
  macOS:         brew install postgresql
or point the tests at a running server: WORKER_TEST_DATABASE_URL=postgres://user@127.0.0.1:5432/postgres
MSG
exit 1
