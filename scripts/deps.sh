#!/bin/sh
# Installs the Debian packages ctrd needs, only those missing, saying which.
# Runs apt-get as root, through sudo otherwise. `deps.sh --build-only`: just
# what compiling the three programs needs (the container image's build
# stage), without the test tools and npm packages below.
#
# `make test` fails (it does not skip) when a tool a test calls is missing,
# so every such tool is here: curl (every end-to-end test), openssl (the
# command: test_server_tls.sh's certificate), wrk (test_loadgen_wrk.sh),
# valgrind (test_valgrind.sh), binutils (objdump, nm), xz-utils (compressed
# input, test_data), python3 (the hostile-client and fault tests),
# python3-yaml (k8s_manifests.py, run by /usr/bin/python3 so that it sees
# Debian's modules), python3-torch and python3-numpy (python/ctrd_torch,
# the PyTorch import that test_import.sh runs with /usr/bin/python3), clang
# and llvm (make fuzz, fuzz-cover), zlib1g-dev (ctrd: Content-Encoding
# gzip/deflate), prometheus (promtool, which
# test_openapi.sh runs on /metrics; Debian has no smaller package with it),
# nodejs and npm (the OpenAPI validator of test_openapi.sh: tests/openapi/,
# its pinned version installed by `npm ci` below into the git-ignored
# tests/openapi/node_modules), python3-matplotlib (the plots of `make repro`,
# scripts/repro_study.py, run by /usr/bin/python3).
set -eu
BUILD_PKGS="gcc make pkg-config binutils
      libjansson-dev libssl-dev libxxhash-dev libsimde-dev libopenblas-dev
      libmicrohttpd-dev liburing-dev zlib1g-dev"
TEST_PKGS="xz-utils curl openssl wrk python3-yaml prometheus nodejs
      python3 python3-torch python3-numpy python3-matplotlib valgrind clang llvm
      slowhttptest"
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1
PKGS=$BUILD_PKGS
[ $build_only = 1 ] || PKGS="$BUILD_PKGS $TEST_PKGS"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm: in nodejs where that comes from NodeSource, its own package in Debian.
[ $build_only = 1 ] || command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "deps: installing missing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

[ $build_only = 1 ] && exit 0

# The npm packages of tests/openapi/package-lock.json, when missing or
# older than the lock file.
OA="$(dirname "$0")/../tests/openapi"
stamp="$OA/node_modules/.package-lock.json"
if [ ! -x "$OA/node_modules/.bin/prism" ] || [ ! -f "$stamp" ] || [ "$OA/package-lock.json" -nt "$stamp" ]; then
    echo "deps: installing the npm packages of tests/openapi (npm ci)"
    (cd "$OA" && npm ci --no-audit --no-fund --loglevel=error)
fi
