#!/bin/bash
# The Prometheus rules shipped for the shadow candidate
# (deploy/prometheus/ctrd-shadow-rules.yaml): `promtool check rules` accepts
# them, and `promtool test rules` runs their unit tests
# (ctrd-shadow-rules.test.yaml: each alert fires on synthetic series where it
# should and stays quiet where it should not). That every metric name they
# use is one a live ctrd exports is checked in tests/test_server_shadow.sh.
# promtool comes with `make deps` (Debian's prometheus); a missing one is a
# failure, never a skip.
cd "$(dirname "$0")/.." || exit 1
DIR=deploy/prometheus
FAILS=0
CHECKS=0
fail() { FAILS=$((FAILS + 1)); printf 'FAIL: %s\n' "$*"; }
ok() { CHECKS=$((CHECKS + 1)); printf 'ok: %s\n' "$*"; }

command -v promtool >/dev/null 2>&1 || { echo "FAIL: promtool is not installed (\`make deps\` installs it)"; exit 1; }

n=0
for rules in "$DIR"/*-rules.yaml; do
    [ -f "$rules" ] || continue
    n=$((n + 1))
    if out=$(promtool check rules "$rules" 2>&1); then
        ok "promtool check rules $rules: $(printf '%s\n' "$out" | grep -o '[0-9]* rules found')"
    else
        fail "promtool check rules $rules: $out"
    fi
    t=${rules%.yaml}.test.yaml
    if [ ! -f "$t" ]; then
        fail "$rules has no unit test file $t"
        continue
    fi
    # promtool resolves rule_files relative to the test file's directory.
    if out=$(cd "$(dirname "$t")" && promtool test rules "$(basename "$t")" 2>&1); then
        ok "promtool test rules $t"
    else
        fail "promtool test rules $t:"
        printf '%s\n' "$out" | head -n 40
    fi
    # Every alert of the file is exercised by its test file, and each has
    # a runbook and a severity.
    for a in $(grep -o '^ *- alert: [A-Za-z]*' "$rules" | awk '{print $3}'); do
        grep -q "alertname: $a\$" "$t"; [ $? -eq 0 ] && ok "alert $a has unit tests" || fail "alert $a has no unit test in $t"
    done
    na=$(grep -c '^ *- alert:' "$rules")
    nr=$(grep -c '^ *runbook: ' "$rules")
    ns=$(grep -c '^ *severity: ' "$rules")
    [ "$na" -gt 0 ] && [ "$nr" = "$na" ] && [ "$ns" = "$na" ]
    [ $? -eq 0 ] && ok "$na alerts, each with a severity and a runbook" || fail "$na alerts, $nr runbooks, $ns severities"
    # The runbook anchors point at a heading that exists.
    for anchor in $(grep -o 'runbook: docs/[A-Za-z_]*\.md#[a-z0-9-]*' "$rules" | sort -u | sed 's/runbook: //'); do
        doc=${anchor%%#*}; frag=${anchor#*#}
        if [ -f "$doc" ] && grep '^#' "$doc" | sed 's/^#* //' | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9 -]//g; s/ /-/g' | grep -qx "$frag"; then
            ok "runbook $anchor exists"
        else
            fail "runbook $anchor: no such heading"
        fi
    done
done
[ "$n" -gt 0 ]; [ $? -eq 0 ] && ok "$n rule file(s) in $DIR" || fail "no rule files in $DIR"

# A broken rule must fail: promtool must not pass whatever it is given.
T=$(mktemp -d "${TMPDIR:-/tmp}/ctrd-rules.XXXXXX")
trap 'rm -rf "$T"' EXIT
cp "$DIR"/ctrd-shadow-rules.yaml "$DIR"/ctrd-shadow-rules.test.yaml "$T"/
sed -i 's/) > 0.25$/) > 0.35/' "$T/ctrd-shadow-rules.yaml"
if (cd "$T" && promtool test rules ctrd-shadow-rules.test.yaml >/dev/null 2>&1); then
    fail "the unit tests still pass with CtrdShadowPDHigh's threshold moved to 0.35"
else
    ok "the unit tests fail when CtrdShadowPDHigh's threshold moves (0.25 -> 0.35)"
fi
printf 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(ctrd_shadow_pd_sum[10m] > 0\n' >"$T/bad-rules.yaml"
if promtool check rules "$T/bad-rules.yaml" >/dev/null 2>&1; then
    fail "promtool check rules accepted a malformed expression"
else
    ok "promtool check rules refuses a malformed expression"
fi

echo "$CHECKS checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
