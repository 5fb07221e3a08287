#!/usr/bin/env bash
# deps.sh installs the Debian packages named as its arguments, but only those
# that are not installed yet, so it is cheap to run before every build. It runs
# apt-get update first (a fresh machine may have empty package lists), as root
# or through sudo. When it cannot install, it says what to install and fails.
#
#   scripts/deps.sh librocksdb-dev protobuf-compiler libprotobuf-dev
set -euo pipefail

fail() {
  echo "deps.sh: $*" >&2
  echo "deps.sh: please install these Debian packages yourself: ${missing[*]}" >&2
  echo "deps.sh: (not on Debian? install their equivalents, then skip this check with an empty list: make test SYSTEM_DEPS=)" >&2
  exit 1
}

installed() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [[ $status == "install ok installed" ]]
}

missing=()
for pkg in "$@"; do
  installed "$pkg" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps.sh: installing missing packages: ${missing[*]}" >&2
command -v apt-get >/dev/null || fail "apt-get not found"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  fail "not root and sudo not found"
fi

"${as_root[@]}" apt-get update || fail "apt-get update failed"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}" || fail "apt-get install failed"

for pkg in "${missing[@]}"; do
  installed "$pkg" || fail "$pkg is still not installed after apt-get install"
done
