#!/bin/bash
# bench/report.py (the BENCHMARKS.md and README table generator) against
# made-up bench output directories: tests/bench_report.py.
cd "$(dirname "$0")/.." || exit 1
for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1; then
        exec "$py" tests/bench_report.py
    fi
done
echo "FAIL: python3 is not installed (\`make deps\` installs it)"
exit 1
