#!/bin/sh
# Installs the Debian packages ctrd needs, only those missing, saying which.
# Runs apt-get as root, through sudo otherwise.
set -eu
PKGS="gcc make pkg-config binutils xz-utils curl
      libjansson-dev libssl-dev libxxhash-dev libsimde-dev libopenblas-dev
      libmicrohttpd-dev liburing-dev
      python3-yaml
      python3 valgrind clang llvm"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
