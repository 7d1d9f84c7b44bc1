#!/bin/sh
# Installs the Debian packages ctrd needs, only those missing, saying which.
# Runs apt-get as root, through sudo otherwise.
#
# `make test` fails (it does not skip) when a tool a test calls is missing,
# so every such tool is here: curl (every end-to-end test), openssl (the
# command: test_server_tls.sh's certificate), wrk (test_loadgen_wrk.sh),
# valgrind (test_valgrind.sh), binutils (objdump, nm), xz-utils (compressed
# input, test_data), python3 (the hostile-client and fault tests),
# python3-yaml (k8s_manifests.py, run by /usr/bin/python3 so that it sees
# Debian's modules), clang and llvm (make fuzz, fuzz-cover), slowhttptest
# (test_conn_limit.sh: slow-header and slow-body attacks).
set -eu
PKGS="gcc make pkg-config binutils xz-utils curl openssl wrk
      libjansson-dev libssl-dev libxxhash-dev libsimde-dev libopenblas-dev
      libmicrohttpd-dev liburing-dev
      python3-yaml
      python3 valgrind clang llvm slowhttptest"
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
