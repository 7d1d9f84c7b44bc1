#!/bin/bash
# test_fuzz_replay.sh - every fuzz target over every file of its corpus
# (tests/fuzz/corpus/<target>/: seeds and every crash or slow input found),
# under ASan+UBSan, as SQLite's fuzzcheck does. The replay drivers are
# $SB/tests/fuzz_replay_<target> (tests/fuzz/replay.c + the target). Under
# `make test SANITIZE=address,undefined` they are this build's own; under a
# plain `make test` they are built here into build/san-address-undefined
# (FUZZ_REPLAY_B overrides), once: later runs only rebuild what changed.
# A corpus replay takes seconds; `make fuzz` is the long run.
set -u
B=${B:-build}
targets=$(ls tests/fuzz/fuzz_*.c 2>/dev/null | sed 's|^tests/fuzz/fuzz_||; s|\.c$||')
[ -n "$targets" ] || { echo "FAIL: no fuzz targets in tests/fuzz/"; exit 1; }
# This build's own drivers when it is an ASan+UBSan build.
first=$(echo $targets | cut -d' ' -f1)
SB=${FUZZ_REPLAY_B:-build/san-address-undefined}
if [ -z "${FUZZ_REPLAY_B:-}" ] && [ -x "$B/tests/fuzz_replay_$first" ] &&
   nm "$B/tests/fuzz_replay_$first" 2>/dev/null | grep -q '__asan_init' &&
   nm "$B/tests/fuzz_replay_$first" 2>/dev/null | grep -q '__ubsan_handle'; then
    SB=$B
fi
bins=""
for t in $targets; do bins="$bins $SB/tests/fuzz_replay_$t"; done

if [ "$SB" != "$B" ]; then
    echo "building the ASan+UBSan replay drivers in $SB"
    mkdir -p "$SB"
    if ! make --no-print-directory -s SANITIZE=address,undefined B="$SB" $bins >"$SB/replay-build.log" 2>&1; then
        echo "FAIL: building the sanitized replay drivers:"
        tail -n 30 "$SB/replay-build.log"
        exit 1
    fi
fi

# Leaks count as findings; UBSan already aborts (-fno-sanitize-recover=all).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fails=0
total=0
for t in $targets; do
    dir=tests/fuzz/corpus/$t
    if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then
        echo "FAIL: $t: no corpus in $dir"
        fails=$((fails + 1))
        continue
    fi
    n=$(ls "$dir" | wc -l)
    total=$((total + n))
    out=$(FUZZ_REPLAY_VERBOSE=1 "$SB/tests/fuzz_replay_$t" "$dir" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok: $t: $(printf '%s\n' "$out" | tail -n 1)"
    else
        fails=$((fails + 1))
        echo "FAIL: $t (exit $rc), last input: $(printf '%s\n' "$out" | grep '^input:' | tail -n 1)"
        printf '%s\n' "$out" | grep -v '^input:' | tail -n 40
    fi
done
echo "$total corpus inputs over $(echo $targets | wc -w) targets, $fails targets failed"
[ $fails -eq 0 ]
