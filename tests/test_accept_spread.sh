#!/bin/bash
# End to end: connections are spread over libmicrohttpd's threads
# (server/listener.c). 64 keep-alive connections opened in a burst, one
# request each; then ctrd's epoll instances (one per --http-threads thread)
# are read from /proc: with libmicrohttpd's own accept one thread took all
# 64. Each of 4 threads must hold some, none more than half. Then a burst
# far over the accept bound (--max-connections 8: at most 136 open, the
# rest wait in the backlog) must leave ctrd serving and stopping cleanly:
# libmicrohttpd 0.9.75 deadlocks a thread whose own limit a handed-over
# connection meets, which the bound keeps out of reach.
. "$(dirname "$0")/lib_server.sh"

make_model "$T/m.ctrm" 5 spread
HERE=$(dirname "$0")

srv_start spread --model "$T/m.ctrm" --http-threads 4 || exit 1
OUT=$(timeout 60 python3 "$HERE/accept_spread.py" "$SRV_PORT" "$SRV_PID" 64 2>&1)
log "64 connections: $OUT"
printf '%s' "$OUT" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["answered"] == 64, "answered %d of 64" % r["answered"]
busy = [c for c in r["per_epoll"] if c > 0]
assert sum(r["per_epoll"]) >= 64, "the epolls watch %d of 64 connections" % sum(r["per_epoll"])
assert len(busy) == 4, "connections on %d of 4 threads: %s" % (len(busy), r["per_epoll"])
assert max(busy) <= 32, "one thread holds %d of 64: %s" % (max(busy), r["per_epoll"])
' 2>"$T/spread.err"
check $? "64 connections over all 4 HTTP threads, none with more than half $(cat "$T/spread.err")"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

srv_start over --model "$T/m.ctrm" --max-connections 8 --http-threads 2 --conn-timeout-s 60 || exit 1
FD0=$(ls "/proc/$SRV_PID/fd" | wc -l)
timeout 90 python3 "$HERE/hostile.py" flood "$SRV_PORT" --conns 400 --max-conns 8 >"$T/flood.out" 2>&1
check $? "400 connections against an accept bound of 136: $(head -n 1 "$T/flood.out" | cut -c1-160)"
req GET /readyz; expect_status 200 "serves after the burst"
for _ in $(seq 1 50); do [ "$(ls "/proc/$SRV_PID/fd" | wc -l)" -le "$FD0" ] && break; sleep 0.2; done
FDS=$(ls "/proc/$SRV_PID/fd" | wc -l)
[ "$FDS" -le "$FD0" ]; check $? "fds back to the baseline ($FDS, baseline $FD0)"
srv_stop TERM 20
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0 after the burst"
finish
