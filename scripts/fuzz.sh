#!/bin/bash
# fuzz.sh - runs the libFuzzer targets built by `make fuzz-build` (Makefile,
# "hardening" block); `make fuzz` and `make fuzz-merge` call it.
#
#   fuzz.sh run TARGET... [-- LIBFUZZER_ARGS...]
#       each target FUZZ_SECONDS (60) seconds, one after the other (FUZZ_JOBS
#       > 1: that many libFuzzer jobs per target), at nice 10. Reads
#       tests/fuzz/corpus/TARGET/ (never writes it); new inputs go to
#       $FUZZ_B/work/TARGET/, crashes, leaks and timeouts to
#       $FUZZ_B/artifacts/TARGET/, the log to $FUZZ_B/logs/TARGET.log.
#       Prints one line per target: executions, exec/s, coverage (libFuzzer
#       "cov": edges, "ft": features), corpus size, findings. Exits 1 if any
#       target found something.
#   fuzz.sh cover TARGET...
#       line and branch coverage of each target's code under test, from the
#       repository corpus and with the work inputs ($FUZZ_COV_B replay
#       drivers built by `make fuzz-cover`)
#   fuzz.sh merge TARGET...
#       adds the work inputs that reach new coverage to the repository
#       corpus (libFuzzer -merge=1); commit what it adds, with any crash
#       input (fixed) copied in by hand.
#
# A tests/fuzz/TARGET.dict, when present, is passed as -dict.
set -u
FUZZ_B=${FUZZ_B:-build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
mode=${1:-}
shift || true
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#targets[@]} -gt 0 ] || { echo "usage: $0 run|merge TARGET... [-- ARGS]"; exit 2; }

bin_of() { echo "$FUZZ_B/fuzz_$1"; }
dict_args() { [ -f "tests/fuzz/$1.dict" ] && echo "-dict=tests/fuzz/$1.dict"; }

case "$mode" in
run)
    mkdir -p "$FUZZ_B/logs"
    found=0
    summary=""
    for t in "${targets[@]}"; do
        bin=$(bin_of "$t")
        [ -x "$bin" ] || { echo "fuzz: $bin is not built"; exit 2; }
        mkdir -p "$FUZZ_B/work/$t" "$FUZZ_B/artifacts/$t" "tests/fuzz/corpus/$t"
        log="$FUZZ_B/logs/$t.log"
        echo "fuzz: $t for ${SECONDS_EACH}s (log: $log)"
        before=$(ls "$FUZZ_B/artifacts/$t" | wc -l)
        # shellcheck disable=SC2046
        nice -n 10 "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$FUZZ_B/artifacts/$t/" \
            $( [ "$JOBS" -gt 1 ] && echo "-jobs=$JOBS -workers=$JOBS" ) \
            $(dict_args "$t") "${extra[@]}" \
            "$FUZZ_B/work/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
        rc=$?
        after=$(ls "$FUZZ_B/artifacts/$t" | wc -l)
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
        eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
        last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
        cov=$(printf '%s' "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
        ft=$(printf '%s' "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
        corp=$(printf '%s' "$last" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | awk '{print $2}')
        new=$((after - before))
        line=$(printf '%-14s %12s execs %8s/s  cov %6s  ft %7s  corpus %-12s findings %d (exit %d)' \
            "$t" "$execs" "$eps" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$new" "$rc")
        echo "$line"
        summary="$summary$line"$'\n'
        if [ "$new" -gt 0 ] || [ "$rc" -ne 0 ]; then
            found=1
            grep -E 'ERROR|SUMMARY|disagrees|Test unit written' "$log" | head -n 20 | sed 's/^/    | /'
        fi
    done
    echo
    printf '%s' "$summary"
    exit $found
    ;;
merge)
    for t in "${targets[@]}"; do
        bin=$(bin_of "$t")
        [ -d "$FUZZ_B/work/$t" ] || continue
        n0=$(ls "tests/fuzz/corpus/$t" | wc -l)
        nice -n 10 "$bin" -merge=1 -timeout=10 -rss_limit_mb=2048 $(dict_args "$t") \
            "tests/fuzz/corpus/$t" "$FUZZ_B/work/$t" >"$FUZZ_B/logs/$t.merge.log" 2>&1
        n1=$(ls "tests/fuzz/corpus/$t" | wc -l)
        echo "fuzz-merge: $t: $n0 -> $n1 corpus files"
    done
    ;;
cover)
    # Line and branch coverage of the code under test, from the repository
    # corpus alone and with the work inputs of the last `fuzz` run, through
    # replay drivers built with clang source-based coverage in $FUZZ_COV_B.
    COV_B=${FUZZ_COV_B:-build/fuzz-cov}
    mkdir -p "$COV_B/prof"
    for t in "${targets[@]}"; do
        case "$t" in
            decode_v1) files="server/decode.c server/decode_v1.c server/json_scan.c server/json_num.c" ;;
            decode_v2) files="server/decode.c server/decode_v2.c server/json_scan.c server/json_num.c" ;;
            json_scan) files="server/json_scan.c server/json_num.c" ;;
            model) files="model/model_read.c model/model_header.c model/model_names.c" ;;
            data) files="model/data.c" ;;
            audit_reader) files="model/audit_read.c model/audit_record.c" ;;
            *) files="" ;;
        esac
        for set in seeds all; do
            dirs="tests/fuzz/corpus/$t"
            [ "$set" = all ] && [ -d "$FUZZ_B/work/$t" ] && dirs="$dirs $FUZZ_B/work/$t"
            rm -f "$COV_B/prof/$t-$set".*
            # shellcheck disable=SC2086
            LLVM_PROFILE_FILE="$COV_B/prof/$t-$set.%p.profraw" \
                "$COV_B/tests/fuzz_replay_$t" $dirs >/dev/null 2>&1
            llvm-profdata merge -sparse "$COV_B/prof/$t-$set".*.profraw -o "$COV_B/prof/$t-$set.profdata"
            # shellcheck disable=SC2086
            n=$(find $dirs -maxdepth 1 -type f | wc -l)
            # shellcheck disable=SC2086
            llvm-cov report "$COV_B/tests/fuzz_replay_$t" -instr-profile="$COV_B/prof/$t-$set.profdata" \
                $files 2>/dev/null | awk -v t="$t" -v s="$set" -v n="$n" '
                    $1 ~ /\.c$/ { k = split($1, p, "/")
                                   printf "%-13s %-5s %6d inputs  %-12s lines %7s  branches %7s\n", t, s, n, p[k], $10, $13 }'
        done
    done
    ;;
*)
    echo "usage: $0 run|merge|cover TARGET... [-- ARGS]"
    exit 2
    ;;
esac
