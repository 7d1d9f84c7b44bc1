#!/bin/sh
# Every symbol libctr exports must start with ctr_ (public) or ctr__ (internal).
set -eu
bad=$(nm -g --defined-only "$1" | awk 'NF==3 {print $3}' | grep -v '^ctr_' || true)
if [ -n "$bad" ]; then
    echo "checksymbols: unprefixed exported symbols in $1:"; echo "$bad"; exit 1
fi
echo "checksymbols: all exported symbols of $1 are ctr_-prefixed"
