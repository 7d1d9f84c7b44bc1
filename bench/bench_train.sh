#!/bin/bash
# bench_train.sh - part 8 of make bench: `ctrtool train` rows/s next to
# PyTorch training the reference modules (python/ctrd_torch, Debian's
# torch under /usr/bin/python3; bench/torch_train.py says what it does and
# times) on the same rows, with the same optimizers, batch and thread
# count, in the same run.
#
# One data file (ctrtool gen-data: Criteo-shaped synthetic rows, written
# once to $TRAIN_DIR, default $B/bench/train), encoded once for torch
# (cached next to it). Per architecture and thread count, TRAIN_RUNS runs
# (3; 1 with BENCH_QUICK=1) of ctrtool train and torch_train.py in turn,
# one epoch over every row (--valid-frac 0); each side's own rows/s (ctrtool
# train's "train: S s, R rows/s" line: the epochs only, no loading or
# evaluation; torch: the epochs only, no loading or encoding); the median
# of the runs and their ratio. After the first ctrtool run of an
# architecture, torch_train.py --check compares the model it wrote with
# the reference module the same flags build (config, then scores of the
# first 256 rows against ctrtool score, <= 1e-5): the check that both sides
# train the same model on the same encoded rows.
#
# An architecture ctrtool train does not take yet (it exits non-zero for
# a model other than mlp) is reported as "not yet supported by ctrtool
# train", its torch figure still measured; the part carries on.
#
# Environment: TRAIN_ARCHS (mlp dot dcnv2 wukong), TRAIN_THREADS (1 2),
# TRAIN_RUNS, TRAIN_ROWS (200000; 20000 with BENCH_QUICK=1), TRAIN_DIR,
# TRAIN_OMP_WAIT_POLICY (passive | active | default: torch's OpenMP threads).
# Output: the table on stdout, $B/bench/out/train.json (report.py's part 8).
set -euo pipefail
B=${B:-build}
out="$B/bench/out"
dir=${TRAIN_DIR:-$B/bench/train}
mkdir -p "$out" "$dir"
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "bench_train: $PY has no torch (apt-get install python3-torch); part 8 skipped"
    exit 0
fi

# ---- the models and the run: every size in this one place --------------------------
# Sized for ~100k-row data: d 16, 65,536 buckets a table (ctrtool train's
# default), top MLP 256-128, bottom MLP 64 (then d), small interactions.
# Flags mean the same on both sides (ctrtool train's / ctrtool synth's
# names; torch_train.py takes the same). ReLU: the activation torch has a
# fused kernel for (SmeLU, ctrtool's default, is several ops in torch).
COMMON="--dim 16 --buckets 65536 --batch 256 --epochs 1 --activation relu --optimizer adam --lr 1e-3 --emb-lr 0.1 --emb-init 0.05 --lr-decay linear --seed 1"
declare -A SIZES=(
    [mlp]="--hidden 256,128"
    [dot]="--arch dot --bottom 64 --hidden 256,128"
    [dcnv2]="--arch dcnv2 --bottom 64 --cross 3 --rank 64 --hidden 256,128"
    [wukong]="--arch wukong --bottom 64 --layers 2 --nf 8 --nl 8 --k 24 --fmb 256 --hidden 256,128"
)
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    ROWS=${TRAIN_ROWS:-20000} RUNS=${TRAIN_RUNS:-1}
else
    ROWS=${TRAIN_ROWS:-200000} RUNS=${TRAIN_RUNS:-3}
fi
ARCHS=${TRAIN_ARCHS:-mlp dot dcnv2 wukong}
THREADS=${TRAIN_THREADS:-1 2}
DATA_SEED=8
# torch's OpenMP threads wait passively (torch_train.py: libgomp's default
# spinning made torch 5-10x slower at 2 threads on a shared 2-core machine).
OMP_POLICY=${TRAIN_OMP_WAIT_POLICY:-passive}

for m in $ARCHS; do
    [ -n "${SIZES[$m]:-}" ] || { echo "bench_train: unknown architecture $m" >&2; exit 2; }
done

failed=0
data="$dir/rows-$ROWS-s$DATA_SEED.tsv"
if [ ! -s "$data" ]; then
    "$B/ctrtool" gen-data --rows "$ROWS" --seed "$DATA_SEED" --out "$data"
fi
cache="${data%.tsv}.npz"
# shellcheck disable=SC2086
"$PY" bench/torch_train.py --encode-only --data "$data" --cache "$cache" $COMMON

"$PY" bench/torch_train.py --self-test || failed=1

runs="$dir/runs.tsv"
notes="$dir/notes.tsv"
: >"$runs"
: >"$notes"
rm -f "$dir"/check-*.json
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(date -u +%FT%TZ); $ROWS rows, $RUNS run(s) a figure, threads: $THREADS"
for m in $ARCHS; do
    # shellcheck disable=SC2206
    flags=($COMMON ${SIZES[$m]})
    unsupported=0 checked=0
    for t in $THREADS; do
        for r in $(seq 1 "$RUNS"); do
            if [ "$unsupported" = 0 ]; then
                log="$dir/ctrtool-$m.log"
                if "$B/ctrtool" train --data "$data" --out "$dir/$m.ctrm" "${flags[@]}" --threads "$t" \
                        --valid-frac 0 >"$log" 2>&1; then
                    rate=$(sed -n 's/^train: [0-9.]* s, \([0-9.]*\) rows\/s.*/\1/p' "$log" | tail -n 1)
                    printf '%s\t%s\tctrtool\t%s\t%s\n' "$m" "$t" "$r" "${rate:-nan}" >>"$runs"
                    echo "ctrtool train $m, $t thread(s), run $r: ${rate:-?} rows/s"
                    [ -n "$rate" ] || failed=1
                    if [ "$checked" = 0 ]; then
                        checked=1
                        "$PY" bench/torch_train.py --check "$dir/$m.ctrm" --ctrtool "$B/ctrtool" --data "$data" \
                            "${flags[@]}" --json "$dir/check-$m.json" || failed=1
                    fi
                elif [ "$m" != mlp ]; then
                    unsupported=1
                    why=$(grep -m 1 -i 'ctrtool' "$log" || head -n 1 "$log")
                    printf '%s\tnot yet supported by ctrtool train\t%s\n' "$m" "$why" >>"$notes"
                    echo "ctrtool train $m: not yet supported by ctrtool train ($why)"
                else
                    echo "ctrtool train $m FAILED:"; tail -n 5 "$log"
                    failed=1
                fi
            fi
            tj="$dir/torch-$m.json"
            rm -f "$tj"
            if "$PY" bench/torch_train.py --data "$data" --cache "$cache" "${flags[@]}" --threads "$t" \
                    --omp-wait-policy "$OMP_POLICY" --json "$tj"; then
                rate=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows_per_s"])' "$tj")
                printf '%s\t%s\ttorch\t%s\t%s\n' "$m" "$t" "$r" "$rate" >>"$runs"
            else
                echo "torch_train.py $m FAILED"
                failed=1
            fi
        done
    done
done

"$PY" - "$runs" "$notes" "$dir" "$out/train.json" "$ROWS" "$RUNS" "$COMMON" "$load_start" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "${BENCH_QUICK:-0}" "$ARCHS" "$THREADS" "$OMP_POLICY" \
    "$(for m in $ARCHS; do printf '%s=%s;' "$m" "${SIZES[$m]}"; done)" <<'EOF' || failed=1
import json, os, statistics, sys
runs_p, notes_p, d, out_p, rows, nruns, common, l0, l1, quick, archs, threads, omp, sizes = sys.argv[1:]
import torch
runs = [l.split("\t") for l in open(runs_p).read().splitlines() if l.strip()]
notes = {}
for l in open(notes_p).read().splitlines():
    if l.strip():
        m, note, why = (l.split("\t") + ["", ""])[:3]
        notes[m] = {"note": note, "why": why}
sizes = dict(kv.split("=", 1) for kv in sizes.split(";") if kv)
res, bad = [], False
for m in archs.split():
    chk = None
    p = os.path.join(d, "check-%s.json" % m)
    if os.path.exists(p):
        chk = json.load(open(p))
        bad |= not chk.get("ok")
    for t in threads.split():
        def vals(side):
            v = []
            for r in runs:
                if r[0] == m and r[1] == t and r[2] == side:
                    try:
                        v.append(float(r[4]))
                    except ValueError:
                        pass
            return [x for x in v if x == x]
        c, tv = vals("ctrtool"), vals("torch")
        cm = statistics.median(c) if c else None
        tm = statistics.median(tv) if tv else None
        res.append({"arch": m, "threads": int(t), "flags": sizes[m],
                    "ctrtool_rows_per_s": cm, "torch_rows_per_s": tm,
                    "ratio": cm / tm if cm and tm else None,
                    "ctrtool_runs": c, "torch_runs": tv,
                    "note": notes.get(m, {}).get("note", ""), "why": notes.get(m, {}).get("why", ""),
                    "check": chk})
j = {"rows": int(rows), "runs": int(nruns), "common_flags": common, "sizes": sizes,
     "torch": torch.__version__, "omp_wait_policy": omp, "quick": quick == "1", "load_start": l0, "load_end": l1,
     "results": res}
with open(out_p, "w") as f:
    json.dump(j, f, indent=1)
    f.write("\n")
def n(x):
    return "-" if x is None else "{:,.0f}".format(x)
print()
print("%-7s %7s %16s %14s %7s  %s" % ("arch", "threads", "ctrtool rows/s", "torch rows/s", "ratio", "same model"))
for r in res:
    ck = r["check"]
    cks = "-" if not ck else ("ok (%.1g)" % ck["max_score_diff"] if ck.get("ok") else "FAILED: " + ck.get("why", ""))
    if r["note"]:
        print("%-7s %7d %16s %14s %7s  %s" % (r["arch"], r["threads"], r["note"], n(r["torch_rows_per_s"]), "-", "-"))
    else:
        print("%-7s %7d %16s %14s %7s  %s" % (r["arch"], r["threads"], n(r["ctrtool_rows_per_s"]),
              n(r["torch_rows_per_s"]), "%.2fx" % r["ratio"] if r["ratio"] else "-", cks))
print("(medians of %s run(s), %s rows, one epoch; target ctrtool >= 1x torch; load average %s -> %s)"
      % (nruns, rows, l0, l1))
sys.exit(1 if bad else 0)
EOF
exit "$failed"
