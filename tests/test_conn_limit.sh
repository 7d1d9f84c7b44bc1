#!/bin/bash
# test_conn_limit.sh - no starvation at --max-connections (server/conns.c):
#  - with --max-connections 64, 80 connections that send a request line and
#    stall (re-opened whenever the server closes them), 40 that trickle
#    their headers a byte at a time and 8 that trickle a body, a normal
#    client sends 50 requests, each on a new connection: all get 200, p90
#    under P90_MS (100 ms; raise it only on a machine too noisy for it);
#  - 64 connections busy sending bodies: a new client gets 503 with
#    Retry-After and Connection: close at once, not a wait in the backlog;
#  - the header and body deadlines close stalled connections however
#    slowly they trickle, and /metrics counts evictions by reason, refusals
#    and open connections;
#  - Debian's slowhttptest (scripts/deps.sh), slow headers (-H) and slow
#    body (-B) with the issue's load (-c 1200 -r 300 -i 2 -s 8192, SLOW_S
#    10 s instead of 25) against /v1/score with the default limits: its CSV
#    reports the service available every second;
#  - over TLS too: stalled connections are evicted and a client is served;
#    with every slot busy sending a body, a new TLS client gets its 503;
#  - a keep-alive connection trickling its next request's headers is cut
#    at --conn-timeout-s + --header-timeout-ms;
#  - afterwards the fd count of ctrd is back to its baseline.
# Loopback only; every loop bounded; ctrd stopped by pid.
. "$(dirname "$0")/lib_server.sh"
. "$(dirname "$0")/lib_hard.sh"
need_python
CL="python3 $(dirname "$0")/conn_limit.py"
P90_MS=${P90_MS:-100}
SLOW_S=${SLOW_S:-10}
if ! command -v slowhttptest >/dev/null 2>&1; then
    echo "FAIL: slowhttptest is not installed (\`make deps\` installs it)"
    exit 1
fi

make_model "$T/m.ctrm" 5 e2e

metric_l() {  # NAME{LABELS}: one labelled series' value
    curl -s --max-time 5 "$SRV_URL/metrics" | awk -v k="$1" '$1 == k {print $2}'
}

# ---- the limit filled with stalled and trickling connections -------------
srv_start cl --model "$T/m.ctrm" --max-connections 64 --header-timeout-ms 2000 \
    --body-timeout-ms 3000 --conn-timeout-s 30 --audit-dir "$T/audit" || exit 1
for i in $(seq 1 5); do req POST /v1/score "$(score_body "$i")"; done
FD0=$(fd_count "$SRV_PID")
log "baseline: $FD0 fds"
timeout 120 $CL starve "$SRV_PORT" --stalled 80 --trickle 40 --body 8 --requests 50 --p90-ms "$P90_MS"
check $? "80 stalled + 40 trickling + 8 slow-body connections at --max-connections 64: the normal client is served"
N=$(metric_l 'ctrd_connections_evicted_total{reason="stalled_at_limit"}')
[ "${N:-0}" -gt 0 ]; check $? "stalled connections evicted at the limit are counted ($N)"

timeout 60 $CL refuse "$SRV_PORT" --hold 64
check $? "64 busy connections: a new client gets 503 at once"
N=$(metric "ctrd_connections_refused_total")
[ "${N:-0}" -ge 1 ]; check $? "the refusal is counted ($N)"

# Deadlines: one connection trickles its headers, another its body, a byte
# every 0.2 s (which restarts libmicrohttpd's own idle timeout each time).
H0=$(metric_l 'ctrd_connections_evicted_total{reason="headers_timeout"}')
B0=$(metric_l 'ctrd_connections_evicted_total{reason="body_timeout"}')
python3 - "$SRV_PORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
hs = socket.create_connection(("127.0.0.1", port), timeout=2)
bs = socket.create_connection(("127.0.0.1", port), timeout=2)
hs.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")
bs.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
t0 = time.monotonic()
closed = {}
for i in range(60):                       # <= 12 s
    for name, s in (("headers", hs), ("body", bs)):
        if name in closed:
            continue
        try:
            s.sendall(b"X-Slow: y\r\n"[i % 11:i % 11 + 1] if name == "headers" else b" ")
        except OSError:
            closed[name] = time.monotonic() - t0
    if len(closed) == 2:
        break
    time.sleep(0.2)
print("closed after: %s" % {k: round(v, 2) for k, v in closed.items()})
ok = 2.0 <= closed.get("headers", 99) <= 5.0 and 3.0 <= closed.get("body", 99) <= 6.0
sys.exit(0 if ok else 1)
EOF
check $? "trickled headers are cut at --header-timeout-ms (2 s) and a trickled body at --body-timeout-ms (3 s)"
H1=$(metric_l 'ctrd_connections_evicted_total{reason="headers_timeout"}')
B1=$(metric_l 'ctrd_connections_evicted_total{reason="body_timeout"}')
[ "$H1" -gt "$H0" ] && [ "$B1" -gt "$B0" ]; check $? "deadline evictions counted (headers $H0 -> $H1, body $B0 -> $B1)"
FDS=$(settle_fds "$SRV_PID" "$FD0" 10)
[ "$FDS" -le "$FD0" ]; check $? "fds back to the baseline ($FDS, baseline $FD0)"

srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
OUT=$("$CTRTOOL" audit verify --model "$T/m.ctrm" "$T/audit" 2>&1); RC=$?
[ "$RC" = 0 ]; check $? "the audit log verifies: $(printf '%s' "$OUT" | tail -n 1)"

# ---- slowhttptest, default limits -------------------------------------------
srv_start slow --model "$T/m.ctrm" --no-audit || exit 1
req GET /readyz
FD0=$(fd_count "$SRV_PID")
for mode in H B; do
    ( cd "$T" && timeout $((SLOW_S + 40)) slowhttptest -"$mode" -c 1200 -r 300 -i 2 -l "$SLOW_S" -s 8192 \
        -u "$SRV_URL/v1/score" -t POST -p 3 -g -o "slow$mode" >"slow$mode.out" 2>&1 )
    # CSV: Seconds,Closed,Pending,Connected,Service Available (0 = not available)
    ROWS=$(tail -n +2 "$T/slow$mode.csv" 2>/dev/null | grep -c .)
    DOWN=$(tail -n +2 "$T/slow$mode.csv" 2>/dev/null | awk -F, '$5 == 0' | grep -c .)
    PEAK=$(tail -n +2 "$T/slow$mode.csv" 2>/dev/null | awk -F, '$4 > m {m = $4} END {print m + 0}')
    log "slowhttptest -$mode: $ROWS seconds, $DOWN unavailable, up to $PEAK connections held"
    [ "$ROWS" -ge "$SLOW_S" ] && [ "$DOWN" = 0 ]; check $? "slowhttptest -$mode: service available every second ($ROWS s)"
    [ "$PEAK" -ge 500 ]; check $? "slowhttptest -$mode really held connections ($PEAK)"
    req POST /v1/score "$(score_body 3)"; expect_status 200 "served right after slowhttptest -$mode"
done
N=$(metric_l 'ctrd_connections_evicted_total{reason="headers_timeout"}')
[ "${N:-0}" -gt 0 ]; check $? "slow headers cut by the header deadline ($N)"
FDS=$(settle_fds "$SRV_PID" "$FD0" 15)
[ "$FDS" -le "$FD0" ]; check $? "slowhttptest: fds back to the baseline ($FDS, baseline $FD0)"
OPEN=$(metric ctrd_connections_open)
[ "$OPEN" -le 1 ]; check $? "ctrd_connections_open back to 1 (this scrape) ($OPEN)"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# ---- TLS: stalled connections (no handshake) evicted at the limit -----------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
    -subj /CN=127.0.0.1 >/dev/null 2>&1
srv_start tls --model "$T/m.ctrm" --max-connections 8 --header-timeout-ms 2000 \
    --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --no-audit || exit 1
FD0=$(fd_count "$SRV_PID")
for i in $(seq 20 29); do exec {fd}<>/dev/tcp/127.0.0.1/"$SRV_PORT"; eval "H$i=$fd"; done
ST=$(curl -s -k -o /dev/null -w '%{http_code}' --max-time 3 "$SRV_URL/healthz")
[ "$ST" = 200 ]; check $? "TLS: served beside 10 stalled connections at --max-connections 8 ($ST)"
for i in $(seq 20 29); do eval "exec {H$i}>&-"; done
FDS=$(settle_fds "$SRV_PID" "$FD0" 10)
[ "$FDS" -le "$FD0" ]; check $? "TLS: fds back to the baseline ($FDS, baseline $FD0)"
for i in $(seq 20 29); do exec {fd}<>/dev/tcp/127.0.0.1/"$SRV_PORT"; eval "H$i=$fd"; done
# 8 TLS connections busy sending a body (not evictable): a new one is
# answered 503 over TLS at once.
timeout 30 python3 - "$SRV_PORT" <<'EOF2'
import socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for i in range(8):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=3))
    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{")
    held.append(s)
time.sleep(0.3)
t0 = time.monotonic()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=3))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    d = s.recv(4096)
    if not d:
        break
    data += d
dt = (time.monotonic() - t0) * 1e3
head = data.split(b"\r\n\r\n")[0].decode("latin-1")
print("TLS beside 8 busy connections: %r in %.1f ms" % (head.splitlines()[:1], dt))
ok = head.startswith("HTTP/1.1 503") and "retry-after" in head.lower() and dt < 1000
sys.exit(0 if ok else 1)
EOF2
check $? "TLS: 8 busy connections at --max-connections 8: a new one gets 503 + Retry-After at once"
for i in $(seq 20 29); do eval "exec {H$i}>&-"; done
FDS=$(settle_fds "$SRV_PID" "$FD0" 15)
[ "$FDS" -le "$FD0" ]; check $? "TLS: fds back to the baseline after the busy ones ($FDS, baseline $FD0)"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"

# ---- keep-alive: a trickled second request is cut too ----------------------
srv_start ka --model "$T/m.ctrm" --conn-timeout-s 1 --header-timeout-ms 1000 --no-audit || exit 1
timeout 30 python3 - "$SRV_PORT" <<'EOF2'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(4096)
t0 = time.monotonic()
nxt = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: y\r\n" * 100
closed = None
for i in range(100):                       # <= 20 s
    try:
        s.sendall(nxt[i:i + 1])
    except OSError:
        closed = time.monotonic() - t0
        break
    time.sleep(0.2)
print("keep-alive connection trickling its next request: closed after %s s" % closed)
sys.exit(0 if closed is not None and 1.5 <= closed <= 4.0 else 1)
EOF2
check $? "a keep-alive connection trickling its next request's headers is cut at --conn-timeout-s + --header-timeout-ms"
N=$(metric_l 'ctrd_connections_evicted_total{reason="headers_timeout"}')
[ "${N:-0}" -ge 1 ]; check $? "counted as headers_timeout ($N)"
srv_stop TERM
[ "$SRV_RC" = 0 ]; check $? "SIGTERM exits 0"
finish
