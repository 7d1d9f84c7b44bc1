#!/bin/bash
# The one test runner: runs each test program or script given, each with a
# timeout (TEST_TIMEOUT seconds, default 300), and ends with the line
#     N passed, N failed, N skipped
# Exit status 77 means skipped: only for what no install can give (no
# AVX-512 on this CPU, valgrind on a sanitizer build); a program `make all`
# builds or a tool `make deps` installs that is missing is a failure, and
# so is a test named here that does not exist. Exits 1 if any failed.
# Output of a failing or skipped test is shown; a passing test's is kept in
# $B/tests/logs/.
set -u
B=${B:-build}
TIMEOUT=${TEST_TIMEOUT:-300}
logdir="$B/tests/logs"
mkdir -p "$logdir"
pass=0 fail=0 skip=0 failed_names=""
for t in "$@"; do
    name=$(basename "$t")
    log="$logdir/$name.log"
    start=$(date +%s%N)
    if [ ! -f "$t" ]; then
        echo "FAIL: $t does not exist (not built? \`make all\` builds every test)" >"$log"
        rc=1
    else
        case "$t" in
            *.sh) B="$B" timeout -k 5 "$TIMEOUT" bash "$t" >"$log" 2>&1 ;;
            *)    B="$B" timeout -k 5 "$TIMEOUT" "$t" >"$log" 2>&1 ;;
        esac
        rc=$?
    fi
    secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); printf 'PASS  %-34s %6ss\n' "$name" "$secs"
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1)); printf 'SKIP  %-34s %6ss  (%s)\n' "$name" "$secs" "$(tail -n 1 "$log")"
    else
        fail=$((fail + 1)); failed_names="$failed_names $name"
        [ $rc -eq 124 ] && echo "timed out after ${TIMEOUT}s" >>"$log"
        printf 'FAIL  %-34s %6ss  (exit %d)\n' "$name" "$secs" "$rc"
        sed 's/^/    | /' "$log" | tail -n 40
    fi
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
