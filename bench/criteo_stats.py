#!/usr/bin/python3
"""criteo_stats.py - how much of the Criteo sample's categorical values a
model can learn anything about: on criteo_grid.py's split (the same SHA-256
rule), the share of the test rows' categorical values never seen in the dev
rows, per column and overall, how often the dev values occur, and how the
unseen share falls as the training rows grow (nested subsets of dev, in the
order of each line's hash). Prints Markdown.

Usage: bench/criteo_stats.py [--data FILE]
"""
import argparse
import collections
import hashlib
import lzma
import sys


def rows(data):
    opener = lzma.open if data.endswith(".xz") else open
    with opener(data, "rb") as f:
        for line in f:
            h = int.from_bytes(hashlib.sha256(line).digest()[:8], "little")
            yield h, line.rstrip(b"\n").split(b"\t")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/criteo/criteo_sample.tsv.xz")
    a = ap.parse_args()
    dev, test = [], []
    for h, f in rows(a.data):
        if len(f) != 40:
            sys.exit("criteo_stats: a row without 40 fields")
        (test if h % 10 == 0 else dev).append((h, f[14:]))
    dev.sort(key=lambda r: r[0])  # a fixed pseudo-random order for the nested subsets
    seen = [collections.Counter() for _ in range(26)]
    for _, c in dev:
        for j, v in enumerate(c):
            if v:
                seen[j][v] += 1

    print(f"dev rows {len(dev)}, test rows {len(test)}\n")
    print("| column | distinct in dev | dev values seen once | test values (non-empty) | unseen in dev | seen < 10 times |")
    print("|---|---|---|---|---|---|")
    tot_n = tot_unseen = tot_rare = 0
    rows_with_unseen = 0
    per_row_unseen = [0] * len(test)
    for j in range(26):
        n = unseen = rare = 0
        for i, (_, c) in enumerate(test):
            v = c[j]
            if not v:
                continue
            n += 1
            k = seen[j].get(v, 0)
            if k == 0:
                unseen += 1
                per_row_unseen[i] += 1
            if k < 10:
                rare += 1
        once = sum(1 for k in seen[j].values() if k == 1)
        tot_n += n
        tot_unseen += unseen
        tot_rare += rare
        print(f"| C{j + 1} | {len(seen[j])} | {once / max(len(seen[j]), 1):.1%} | {n} | "
              f"{unseen / max(n, 1):.1%} | {rare / max(n, 1):.1%} |")
    rows_with_unseen = sum(1 for k in per_row_unseen if k)
    print(f"| all | {sum(len(s) for s in seen)} | "
          f"{sum(1 for s in seen for k in s.values() if k == 1) / sum(len(s) for s in seen):.1%} | "
          f"{tot_n} | {tot_unseen / tot_n:.1%} | {tot_rare / tot_n:.1%} |")
    print(f"\ntest rows with at least one unseen value: {rows_with_unseen / len(test):.1%}; "
          f"unseen values per test row: {sum(per_row_unseen) / len(test):.2f} of "
          f"{tot_n / len(test):.2f} non-empty\n")

    print("| dev rows used | test values unseen | seen < 10 times |")
    print("|---|---|---|")
    for n_dev in (1000, 3000, 10000, 30000, len(dev)):
        sub = [collections.Counter() for _ in range(26)]
        for _, c in dev[:n_dev]:
            for j, v in enumerate(c):
                if v:
                    sub[j][v] += 1
        n = unseen = rare = 0
        for _, c in test:
            for j, v in enumerate(c):
                if v:
                    n += 1
                    k = sub[j].get(v, 0)
                    unseen += k == 0
                    rare += k < 10
        print(f"| {n_dev} | {unseen / n:.1%} | {rare / n:.1%} |")


if __name__ == "__main__":
    main()
