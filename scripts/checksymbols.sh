#!/bin/sh
# Every symbol an archive exports must start with ctr_ (public) or ctr__
# (internal): libctr, libctrd and libctrload link into one program or test,
# so an unprefixed name could collide with a library's. Usage: ARCHIVE...
set -eu
[ $# -gt 0 ] || { echo "usage: checksymbols.sh ARCHIVE..." >&2; exit 2; }
rc=0
for a in "$@"; do
    [ -r "$a" ] || { echo "checksymbols: $a: not built" >&2; rc=1; continue; }
    # __odr_asan.*: AddressSanitizer's one-definition-rule markers, one per
    # instrumented global (make SANITIZE=address): the compiler's, not ours.
    bad=$(nm -g --defined-only "$a" | awk 'NF==3 {print $3}' | grep -v '^ctr_' | grep -v '^__odr_asan[._]' || true)
    if [ -n "$bad" ]; then
        echo "checksymbols: unprefixed exported symbols in $a:"; echo "$bad"; rc=1
    else
        echo "checksymbols: all exported symbols of $a are ctr_-prefixed"
    fi
done
exit $rc
