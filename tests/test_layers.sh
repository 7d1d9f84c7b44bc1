#!/bin/bash
# The layering of DESIGN.md, checked on the built tree:
#  - every archive exports only ctr_-prefixed names (scripts/checksymbols.sh);
#  - server/, loadtest/ and tools/ include only include/ctr/ and their own
#    folder's headers (the Makefile gives them no -Imodel; this catches a
#    path that walks around it), and model/ includes nothing of theirs and
#    no network or io_uring header (model/ does no network I/O);
#  - each program links only what it uses: ctrload has no libmicrohttpd,
#    liburing, OpenBLAS or libcrypto; ctrtool has no libmicrohttpd or liburing.
set -u
B=${B:-build}
fail=0
bad() { echo "FAIL: $*"; fail=1; }

scripts/checksymbols.sh "$B/libctr.a" "$B/libctrd.a" "$B/libctrload.a" || fail=1

for dir in server loadtest tools; do
    hits=$(grep -rnE '^\s*#\s*include\s*"[^"]*(\.\./|model/)' "$dir" --include='*.[ch]' || true)
    [ -z "$hits" ] || bad "$dir/ reaches outside include/ctr and its own folder:"$'\n'"$hits"
done
hits=$(grep -rnE '^\s*#\s*include\s*("[^"]*\.\./|<(sys/socket\.h|netinet/[a-z]+\.h|microhttpd\.h|liburing\.h)>)' model --include='*.[ch]' || true)
[ -z "$hits" ] || bad "model/ includes another layer's or a network header:"$'\n'"$hits"

check_links() {  # PROGRAM FORBIDDEN-LIBRARY...
    local prog=$1; shift
    [ -x "$prog" ] || { bad "$prog is not built"; return; }
    local libs; libs=$(ldd "$prog") || { bad "ldd $prog failed"; return; }
    for lib in "$@"; do
        if grep -q "$lib" <<<"$libs"; then bad "$prog links $lib"; fi
    done
    echo "links: $(basename "$prog"): $(awk '/=>/ {print $1}' <<<"$libs" | tr '\n' ' ')"
}
check_links "$B/ctrload" libmicrohttpd liburing libopenblas libcrypto
check_links "$B/ctrtool" libmicrohttpd liburing

[ $fail -eq 0 ] && echo "layers: OK"
exit $fail
