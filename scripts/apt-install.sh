# Sourced by the ensure-*.sh scripts. apt_install WHAT PACKAGE... installs
# the Debian packages with apt-get when that is possible here (root, or
# password-less sudo), saying WHAT was missing; it returns 1 without
# trying when it is not, so the caller prints what to install by hand.
# RUNLEVEL=1 keeps packages that ship a service (redis-server, postgresql,
# prometheus) from starting it: the tests start private servers.
apt_install() {
  local what=$1
  shift
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else return 1; fi
  fi
  echo "$what not found: installing $* with apt-get" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
