# lib_hard.sh - helpers for the hardening tests (tests/test_hostile_*.sh,
# test_faults_*.sh); source after lib_server.sh.
#
#   rss_kb PID            resident set (VmRSS) in KiB
#   heap_in_use URL       ctrd_heap_in_use_bytes from URL/metrics
#   fd_count PID          open file descriptors
#   settle_fds PID WANT S poll up to S seconds until PID has <= WANT fds;
#                         prints the last count
#   need_python           fail (exit 1) without python3: `make deps`
#                         installs it, so its absence is not a skip
#   check_rss COND WHAT   check, except on a sanitizer build (logged only)

rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status" 2>/dev/null; }

# ctrd_heap_in_use_bytes from /metrics (bytes allocated and not freed).
heap_in_use() { curl -s --max-time 5 "$1/metrics" | awk '$1 == "ctrd_heap_in_use_bytes" {print $2}'; }

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

settle_fds() {  # PID WANT SECONDS
    local i n
    for i in $(seq 1 $(( $3 * 10 ))); do
        n=$(fd_count "$1")
        [ "$n" -le "$2" ] && break
        sleep 0.1
    done
    echo "$n"
}

need_python() {
    if ! command -v python3 >/dev/null 2>&1; then
        echo "FAIL: python3 is not installed (\`make deps\` installs it)"
        exit 1
    fi
}

HOSTILE="python3 $(dirname "${BASH_SOURCE[0]}")/hostile.py"

# RSS is judged only on plain builds: ASan keeps freed memory in its
# quarantine (hundreds of MiB) and TSan maps shadow memory, so under a
# sanitizer the figures are logged, not checked.
SANITIZED=0
if nm "$CTRD" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
    SANITIZED=1
fi
check_rss() {  # COND_STATUS WHAT
    if [ "$SANITIZED" = 1 ]; then
        log "not judged (sanitizer build): $2"
    else
        check "$1" "$2"
    fi
}
