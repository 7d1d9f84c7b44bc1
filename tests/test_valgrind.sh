#!/bin/bash
# test_valgrind.sh - memcheck over the model loader and a short ctrd
# session: `ctrtool inspect` and `ctrtool verify` on a model, then ctrd
# started under valgrind, a few requests of every kind (v1, v2, bad input,
# GET endpoints, an admin reload; a second model by name, its reload and
# SIGHUP), SIGTERM. Any invalid read or write, use
# of uninitialised memory, or a definite/indirect leak fails the test.
# Fails without valgrind (`make deps` installs it); skipped (77) only on a
# sanitizer build, by design: valgrind and ASan/TSan do not mix, and
# `make test SANITIZE=...` has its own memory checks. Bounded: every wait
# has a limit; about 30 s in all.
. "$(dirname "$0")/lib_server.sh"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "FAIL: valgrind is not installed (\`make deps\` installs it)"
    exit 1
fi
if nm "$CTRD" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
    echo "skipped: $CTRD is a sanitizer build"
    exit 77
fi
export OPENBLAS_NUM_THREADS=1
VG=(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30 -q)

make_model "$T/m.ctrm" 51 vg
make_model "$T/n.ctrm" 52 vg

for cmd in inspect verify; do
    "${VG[@]}" --log-file="$T/vg-$cmd.log" "$CTRTOOL" "$cmd" "$T/m.ctrm" >"$T/$cmd.out" 2>&1
    RC=$?
    [ "$RC" = 0 ] && [ ! -s "$T/vg-$cmd.log" ]; check $? "valgrind ctrtool $cmd: exit $RC, clean report"
    [ -s "$T/vg-$cmd.log" ] && head -n 40 "$T/vg-$cmd.log"
done
# A refused file walks the error paths.
head -c 3000 "$T/m.ctrm" >"$T/cut.ctrm"
"${VG[@]}" --log-file="$T/vg-cut.log" "$CTRTOOL" verify "$T/cut.ctrm" >/dev/null 2>&1
RC=$?
[ "$RC" != 99 ] && [ ! -s "$T/vg-cut.log" ]; check $? "valgrind ctrtool verify on a truncated file: refused (exit $RC), clean report"
[ -s "$T/vg-cut.log" ] && head -n 40 "$T/vg-cut.log"

# ctrd under valgrind. The pwrite audit back end: memcheck does not model
# memory the kernel writes through io_uring's shared rings.
TOKEN=valgrind-token-0123456789
SRV_LOG="$T/ctrd.log"
CTRD_AUDIT_NO_URING=1 "${VG[@]}" --log-file="$T/vg-ctrd.log" "$CTRD" --model "$T/m.ctrm" --model "two=$T/n.ctrm" --host 127.0.0.1 \
    --port 0 --threads 2 --audit-dir "$T/audit" --admin-token "$TOKEN" 2>"$SRV_LOG" &
SRV_PID=$!
_srv_all_pids="$_srv_all_pids $SRV_PID"
for i in $(seq 1 300); do     # <= 30 s: valgrind starts slowly
    SRV_PORT=$(grep -o '"msg":"listening".*"port":[0-9]*' "$SRV_LOG" 2>/dev/null | grep -o '[0-9]*$' | head -n 1)
    [ -n "$SRV_PORT" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$SRV_PORT" ] || { fail "ctrd did not start under valgrind"; cat "$SRV_LOG" "$T/vg-ctrd.log"; finish; }
SRV_URL="http://127.0.0.1:$SRV_PORT"
for i in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$SRV_URL/readyz")" = 200 ] && break
    sleep 0.1
done
for i in 1 2 3 4 5; do req POST /v1/score "$(score_body "$i")"; done
expect_status 200 "v1 score"
req POST /v1/score '{"context":{"C1":"x"},"examples":[{"I1":1},{"I2":2.5,"C2":7},{}]}'
expect_status 200 "v1 score with a context"
req POST /v2/models/vg/infer "{\"inputs\":[{\"name\":\"dense\",\"datatype\":\"FP32\",\"shape\":[1,13],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13]},{\"name\":\"sparse\",\"datatype\":\"INT64\",\"shape\":[1,26],\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26]}]}"
expect_status 200 "v2 infer"
req POST /v1/score '{"model":"two","examples":[{"I1":1},{"C2":7}]}'; expect_status 200 "v1 score on model two"
req POST /v1/score '{"examples":[{"I1":1}],"model":"two"}'; expect_status 200 "v1 score, model last"
req POST /v1/score '{"model":"three","examples":[{"I1":1}]}'; expect_status 404 "v1 unknown model"
req GET /v2/models/two/ready; expect_status 200 "v2 model two ready"
req POST /v1/admin/reload '{"model":"two"}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
expect_status 200 "admin reload of model two"
kill -HUP "$SRV_PID"
req POST /v1/score '{"examples":[{"I1":"x"}]}'; expect_status 400 "bad input"
req POST /v1/score '{"examples":[{"C1":"\ud800"}]}'; expect_status 400 "broken JSON"
for p in /healthz /readyz /v1/models /metrics /v2 /v2/models/vg /nope; do req GET "$p"; done
req POST /v1/admin/reload "{\"path\":\"$T/n.ctrm\"}" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
expect_status 200 "admin reload"
req POST /v1/score "$(score_body 9)"; expect_status 200 "score after the reload"
srv_stop TERM 60
[ "$SRV_RC" = 0 ]; check $? "ctrd under valgrind: SIGTERM exits 0 (exit $SRV_RC; 99 = valgrind errors)"
[ ! -s "$T/vg-ctrd.log" ]; check $? "ctrd under valgrind: clean report"
[ -s "$T/vg-ctrd.log" ] && head -n 80 "$T/vg-ctrd.log"
finish
