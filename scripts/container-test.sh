#!/bin/bash
# container-test.sh - `make container-test`: build ctrd's image and check it
# behaves like a production container, with podman (no Docker engine needed).
#
#   1. podman ready (scripts/podman-setup.sh: packages, containers.conf, the
#      local debian:bookworm-slim base); Dockerfile linted (dockerfile-utils).
#   2. podman build --format docker --pull=never (docker format: the OCI
#      format drops HEALTHCHECK); image size < 150 MB, HEALTHCHECK, non-root
#      USER and ENTRYPOINT checked in its config.
#   3. Run it the way the Kubernetes manifests do (read-only root, all
#      capabilities dropped, no-new-privileges), port published on 127.0.0.1
#      only, an audit directory mounted: wait for /readyz, score a request
#      with curl, `podman healthcheck run`, process UID not 0.
#   4. `podman stop` (SIGTERM): exit code 0, within the drain timeout.
#   5. If this ctrtool has `audit verify`, replay the audit log written to the
#      mounted directory (skipped, and said so, until it has).
# The container is removed by id on every exit path. Takes seconds when the
# base image and layer cache are warm (podman keeps them in
# /var/lib/containers between runs).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${CTRD_IMAGE:-localhost/ctrd:test}
DRAIN_S=20          # CTRD_DRAIN_TIMEOUT_S given to the container
STOP_S=30           # podman stop -t: SIGKILL after this, so > DRAIN_S
MAX_IMAGE_BYTES=150000000
DFU_VERSION=0.16.3  # npm dockerfile-utils
WORK=$PWD/build/container
# Written by podman-setup.sh; an inherited CONTAINERS_CONF is not used.
export CONTAINERS_CONF=$WORK/containers.conf

t_start=$(date +%s%N)
secs() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
say() { echo "container-test: $*"; }
cid="" auditdir=""
fail() {
    echo "container-test: FAIL: $*" >&2
    if [ -n "$cid" ]; then
        echo "--- container log (last 30 lines) ---" >&2
        podman logs "$cid" 2>&1 | tail -n 30 >&2 || true
    fi
    exit 1
}
# podman without systemd logs "unable to get systemd connection" errors
# whenever a container with a HEALTHCHECK starts or stops (it schedules the
# checks with systemd timers); harmless here, so filtered out.
pm() {
    local rc=0
    podman "$@" 2>"$WORK/podman.err" || rc=$?
    grep -v 'unable to get systemd connection' "$WORK/podman.err" >&2 || true
    return $rc
}
cleanup() {
    if [ -n "$cid" ]; then podman rm -f -v -t 0 "$cid" >/dev/null 2>&1 || true; fi
    if [ -n "$auditdir" ]; then rm -rf "$auditdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"

# --- 1. podman, lint ------------------------------------------------------
t=$(date +%s%N)
scripts/podman-setup.sh
say "podman ready ($(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')) in $(secs "$t")s"

dfu=$WORK/npm/node_modules/.bin/dockerfile-utils
if [ ! -x "$dfu" ]; then
    if ! command -v npm >/dev/null; then
        say "installing npm (Debian package) for dockerfile-utils"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    say "installing dockerfile-utils@$DFU_VERSION under $WORK/npm"
    npm install --prefix "$WORK/npm" --no-audit --no-fund --loglevel=error \
        "dockerfile-utils@$DFU_VERSION" >/dev/null
fi
# Exit status 1 means errors; warnings print but exit 0.
if ! lint_out=$("$dfu" lint Dockerfile 2>&1); then
    echo "$lint_out" >&2
    fail "dockerfile-utils lint found errors in Dockerfile"
fi
if [ -n "$lint_out" ]; then
    echo "$lint_out"
    say "lint: warnings only (above)"
else
    say "lint: Dockerfile clean (dockerfile-utils $DFU_VERSION)"
fi

# --- 2. build -------------------------------------------------------------
t=$(date +%s%N)
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# The build stage is built and tagged first ($IMAGE-build), so its layers
# are the ancestors of a tagged image and survive the prune below; the full
# build then takes that stage from the cache.
# CTRD_BUILD_ARGS: extra `podman build` arguments, e.g. "--build-arg CI=false".
: >"$WORK/build.log"
for target in "--target build -t $IMAGE-build" "-t $IMAGE"; do
    # shellcheck disable=SC2086
    if ! podman build --format docker --pull=never --layers ${CTRD_BUILD_ARGS:-} $target . \
            >>"$WORK/build.log" 2>&1; then
        grep -v '^cc ' "$WORK/build.log" | tail -n 40 >&2
        fail "podman build failed (full log: $WORK/build.log)"
    fi
done
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
cached=$(grep -c 'Using cache' "$WORK/build.log" || true)
say "built $IMAGE ${new_id:0:12} in $(secs "$t")s ($cached steps from cache; log: $WORK/build.log)"
# Every source change leaves the previous image and its build-stage layers
# untagged (a few hundred MB); drop them, and only them (by id and by this
# Dockerfile's labels), so reruns do not fill the disk.
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true
fi
for label in org.ctrd.stage=build org.opencontainers.image.title=ctrd; do
    podman image prune -f --filter "label=$label" >/dev/null 2>&1 || true
done

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image size $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }') (limit $((MAX_IMAGE_BYTES / 1000000)) MB)"
[ "$size" -lt "$MAX_IMAGE_BYTES" ] || fail "image is $size bytes, over $MAX_IMAGE_BYTES"
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
case "$hc" in
    *'"ctrd","--check","http://127.0.0.1:8080/readyz"'*) ;;
    *) fail "image has no HEALTHCHECK running ctrd --check (got: $hc); built without --format docker?" ;;
esac
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
uid=${user%%:*}
case "$uid" in
    '' | 0 | root) fail "image USER is '${user}': must be a fixed non-root UID" ;;
    *[!0-9]*) fail "image USER is '${user}': use a numeric UID so runAsNonRoot can check it" ;;
esac
ep=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
[ "$ep" = '["ctrd"]' ] || fail "ENTRYPOINT is $ep, expected [\"ctrd\"] (exec form: ctrd must be PID 1)"

# --- 3. run ---------------------------------------------------------------
auditdir=$(mktemp -d "$WORK/audit.XXXXXX")
chown "$uid:$uid" "$auditdir"
# --health-interval=disable: podman schedules health checks with systemd
# timers, and there is no systemd here; `podman healthcheck run` below runs
# the image's HEALTHCHECK on demand instead.
t=$(date +%s%N)
# --cidfile: the id is known to the cleanup even when `run` fails half-way.
cidfile=$auditdir.cid
rm -f "$cidfile"
run_rc=0
pm run -d --cidfile "$cidfile" --health-interval=disable \
    --read-only --cap-drop=ALL --security-opt=no-new-privileges \
    -p 127.0.0.1::8080 -e CTRD_DRAIN_TIMEOUT_S=$DRAIN_S \
    -v "$auditdir:/audit" "$IMAGE" >/dev/null || run_rc=$?
cid=$(cat "$cidfile" 2>/dev/null || true)
rm -f "$cidfile"
if [ $run_rc -ne 0 ] || [ -z "$cid" ]; then fail "podman run failed (exit $run_rc)"; fi
say "started container ${cid:0:12}"
hostport=$(podman port "$cid" 8080/tcp | head -n 1)
port=${hostport##*:}
[ -n "$port" ] || fail "no host port published for 8080/tcp"
base=http://127.0.0.1:$port

ready=0
for _ in $(seq 1 300); do
    running=$(podman inspect --format '{{.State.Running}}' "$cid")
    [ "$running" = true ] || fail "container exited during start-up (exit code $(podman inspect --format '{{.State.ExitCode}}' "$cid"))"
    if curl -fsS -o /dev/null --max-time 2 "$base/readyz" 2>/dev/null; then ready=1; break; fi
    sleep 0.2
done
[ $ready -eq 1 ] || fail "$base/readyz not 200 within 60s"
say "ready on $base in $(secs "$t")s"

# One example with every feature of the demo model (I1..I13 dense,
# C1..C26 categorical: `ctrtool inspect /models/demo.ctrm`).
example='"I1":1,"I2":5,"I3":0,"I4":12,"I5":1382,"I6":4,"I7":15,"I8":2,"I9":181,"I10":1,"I11":2,"I12":null,"I13":2'
for i in $(seq 1 26); do example="$example,\"C$i\":\"$(printf '%08x' $((i * 2654435761 % 4294967296)))\""; done
body="{\"request_id\":\"container-test-1\",\"examples\":[{$example}]}"
resp=$(curl -sS --max-time 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
        --data "$body" "$base/v1/score") || fail "POST /v1/score: curl failed"
code=${resp##*$'\n'}
resp=${resp%$'\n'*}
[ "$code" = 200 ] || fail "POST /v1/score answered $code: $resp"
score=$(sed -n 's/.*"scores":\[\([^],]*\)\].*/\1/p' <<<"$resp")
awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 > 0 && s + 0 < 1) }' ||
    fail "POST /v1/score: no score in (0,1) in: $resp"
say "POST /v1/score -> 200, score $score"
for path in /healthz /metrics /v1/models; do
    curl -fsS -o /dev/null --max-time 5 "$base$path" || fail "GET $path did not answer 200"
done
say "GET /healthz, /metrics, /v1/models -> 200"

podman healthcheck run "$cid" >/dev/null || fail "podman healthcheck run: unhealthy"
say "podman healthcheck run: healthy"

# huser: the UID on the host (no user namespace here), from /proc.
procs=$(podman top "$cid" pid huser args)
hu=$(awk 'NR == 2 { print $2 }' <<<"$procs")
if [ "$hu" = 0 ] || [ "$hu" = root ] || [ "$hu" != "$uid" ]; then
    echo "$procs" >&2
    fail "ctrd runs as host user '$hu', expected UID $uid"
fi
say "ctrd runs as UID $hu (PID 1 in the container: $(awk 'NR == 2 { print $1 }' <<<"$procs"))"

# --- 4. SIGTERM -----------------------------------------------------------
t=$(date +%s%N)
pm stop -t $STOP_S "$cid" >/dev/null
stop_s=$(secs "$t")
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$cid")
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM (137: it ignored SIGTERM and was killed)"
awk -v s="$stop_s" -v d=$DRAIN_S 'BEGIN { exit !(s <= d) }' ||
    fail "stop took ${stop_s}s, over the ${DRAIN_S}s drain timeout"
say "SIGTERM: exit 0 in ${stop_s}s (drain timeout ${DRAIN_S}s)"
logs=$(podman logs "$cid" 2>&1)
# Under the default seccomp profile io_uring is blocked and the audit writer
# falls back to plain writes; it says so in the log.
audit_line=$(grep -m 1 -E '"msg":"audit|io_uring' <<<"$logs" || true)
[ -z "$audit_line" ] || say "ctrd on its audit writer: $audit_line"

# --- 5. audit log ---------------------------------------------------------
tool_usage=$(podman run --rm --no-healthcheck --entrypoint ctrtool "$IMAGE" 2>&1 || true)
if grep -qE '^ *audit ' <<<"$tool_usage"; then
    mapfile -t logs_in_dir < <(cd "$auditdir" && find . -type f | sort)
    if [ ${#logs_in_dir[@]} -eq 0 ]; then
        if grep -q 'no audit writer' <<<"$logs"; then
            say "audit verify SKIPPED: this ctrd build has no audit writer yet"
        else
            fail "no audit log in the mounted /audit after a scored request"
        fi
    else
        args=()
        for f in "${logs_in_dir[@]}"; do args+=("/audit/${f#./}"); done
        out=$(podman run --rm --no-healthcheck --read-only -v "$auditdir:/audit:ro" \
                --entrypoint ctrtool "$IMAGE" audit verify --model /models/demo.ctrm "${args[@]}" 2>&1) ||
            { echo "$out" >&2; fail "ctrtool audit verify failed on the mounted audit log"; }
        say "ctrtool audit verify: ${#args[@]} file(s) OK: $(tail -n 1 <<<"$out")"
    fi
else
    say "audit verify SKIPPED: this ctrtool has no 'audit' command yet"
fi

say "PASS in $(secs "$t_start")s"
