#!/usr/bin/python3
"""bench_report.py - bench/report.py against made-up output directories (no
benchmark runs): every part missing, part 9 whole, part 9 without its
larger-than-RAM half (9c/9d skipped: header-only TSVs). Checks that the
report is written, that part 9's rows and tables appear, and that README's
headline block takes the part 9 rows; part 10 (the shadow candidate) absent
and from a real run's output, its rows judged against the targets. The part
9 figures are shaped like bench/bench_quant.sh's output (values from
docs/BENCHMARKS-quant.md), not a measurement."""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(ROOT, "bench", "report.py")

SIZES = """dim\tdtype\trows\tfile_bytes\ttable_bytes\tratio\trss_ready_kb\tfile_ready_kb\trss_kb\tfile_kb\texamples_per_s\tp99_ms
16\tf32\t600961\t1000600000\t1000000000\t1.0000\t990000\t980000\t994304\t984000\t157440.0\t6.7
16\tf16\t600961\t500600000\t500000000\t0.5003\t500000\t490000\t505856\t496000\t170368.0\t6.4
16\tint8\t600961\t375600000\t375000000\t0.3754\t380000\t370000\t384000\t374000\t128624.0\t8.4
128\tf32\t75120\t1003600000\t1000000000\t1.0000\t1000000\t980000\t1009664\t985000\t34560.0\t31.7
128\tf16\t75120\t503600000\t500000000\t0.5018\t515000\t495000\t521216\t498000\t47904.0\t19.9
128\tint8\t75120\t269200000\t265000000\t0.2682\t290000\t270000\t292864\t271000\t30720.0\t43.9
"""
GATHER = """dtype\tgather_rows_s\tread_rows_s\tratio\ttable_gb\trow_bytes
f32\t1.45e+07\t2.25e+07\t0.644\t2.000\t64
f16\t1.83e+07\t3.45e+07\t0.530\t1.000\t32
int8_rowwise\t2.48e+07\t5.36e+07\t0.463\t0.750\t24
"""
PAGING_HEAD = "advice\trun\trows_per_s\tmajflt_per_s\tread_mb_per_s\tresident\n"
PAGING = PAGING_HEAD + """random\t1\t17332\t3973\t16.3\t0.75
none\t1\t1180\t284\t1201\t0.76
hugepage\t1\t1362\t355\t856\t0.77
random\t2\t12371\t3900\t16.0\t0.75
none\t2\t1282\t290\t1190\t0.76
hugepage\t2\t1788\t350\t850\t0.77
random\t3\t16414\t4000\t16.4\t0.74
none\t3\t980\t280\t1210\t0.75
hugepage\t3\t1550\t360\t860\t0.76
"""
UNIFORM_HEAD = "model\tdtype\tfile_bytes\tready_s\trss_ready_kb\trss_kb\tfile_kb\texamples_per_s\tp99_ms\n"
UNIFORM = UNIFORM_HEAD + """scale-t32g.ctrm\tf32\t32000000000\t104\t20447232\t20500000\t20490000\t736.0\t536.0
scale-t32g-int8.ctrm\tint8\t12000000000\t46\t11744051\t11800000\t11790000\t134016.0\t8.9
"""
QTXT = "quant: AMD EPYC, 2 cores, 23.5 GiB RAM; load average 5 5 5\n\n9a: ...\n"
README = "# ctrd\n\nBefore.\n\nBENCH_TABLE\n\nAfter.\n"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(files):
    d = tempfile.mkdtemp(prefix="bench-report.")
    out = os.path.join(d, "out")
    os.makedirs(out)
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(README)
    p = subprocess.run([sys.executable, REPORT, "--out-dir", out, "--md", os.path.join(d, "B.md"),
                        "--plots", os.path.join(d, "plots"), "--readme", os.path.join(d, "README.md")],
                       capture_output=True, text=True, timeout=120)
    md = open(os.path.join(d, "B.md")).read() if os.path.exists(os.path.join(d, "B.md")) else ""
    readme = open(os.path.join(d, "README.md")).read()
    shutil.rmtree(d)
    return p, md, readme


def section(md, head, end):
    i = md.find(head)
    return md[i:md.find(end, i)] if i >= 0 else ""


def section9(md):
    return section(md, "## 9. ", "## 10. ")


def section10(md):
    return section(md, "## 10. ", "## Plots")


# bench/bench_shadow.sh's output, as a real run printed it (part 10).
SHADOW = """shadow candidate cost: ctrload, 1 example(s)/request, MLP 128,64, 20000 rows a table, 3s a run after 1s warm-up,
  3 round(s), ctrd --no-audit, shadow sample 1.0; 2 cores shared by client, server and shadow; load average 3.10 3.86 4.51
peak (median): 68184.7 req/s; half of it: 34092 req/s
  round 1 none     34092.0 req/s  p50   0.085 ms  p99   1.454 ms  p99.9   4.702 ms  errors 0.000%  clean 1  ctrd CPU 3.05s
  round 1 shadow   34092.0 req/s  p50   0.169 ms  p99   7.619 ms  p99.9  12.091 ms  errors 0.000%  clean 1  ctrd CPU 4.26s  shadow: compared 132066, dropped 4302, mean PD 0.0392

arm       req/s (med)     p50 ms     p99 ms
none          34092.0      0.085      1.888
shadow        34092.0      0.169      9.208
offered rate: 34092 req/s (half of peak 68184.7)
shadow compared 132066 examples, dropped 4302 (96.8% kept), mean PD 0.0392 (median of the shadow runs)
p99 shadow / none, round by round: 5.24 20.48 2.89
p99 shadow / none: 4.877 (target <= 1.10): NOT met
throughput shadow / none: 1.000 (target >= 1, no lower): met
"""

# The same script since the A/A control and pinning (a real run; rounds 3-5
# and the peak runs left out).
SHADOW_AA = """shadow candidate cost: ctrload, 1 example(s)/request, MLP 128,64, 20000 rows a table, 5s a run after 1s warm-up,
  5 round(s), ctrd --no-audit, shadow sample 1.0; ctrd (primary and shadow) on CPUs 0-0, ctrload on CPUs 1-1 (taskset); load average 1.14 0.83 0.99
peak (median): 38892.0 req/s; half of it: 19446 req/s
  round 1 none     19446.0 req/s  p50   0.099 ms  p99  10.256 ms  p99.9  14.123 ms  errors 0.000%  clean 1  ctrd CPU 4.67s
  round 1 shadow   19446.0 req/s  p50   0.119 ms  p99   2.875 ms  p99.9   8.372 ms  errors 0.000%  clean 1  ctrd CPU 5.40s  shadow: compared 114641, dropped 2035, mean PD 0.0392
  round 1 again    19446.0 req/s  p50   0.093 ms  p99   1.585 ms  p99.9   4.407 ms  errors 0.000%  clean 1  ctrd CPU 4.26s
  round 2 none     19446.0 req/s  p50   0.077 ms  p99   0.866 ms  p99.9   5.194 ms  errors 0.000%  clean 1  ctrd CPU 3.17s
  round 2 shadow   19446.0 req/s  p50   0.077 ms  p99   1.053 ms  p99.9   4.186 ms  errors 0.000%  clean 1  ctrd CPU 3.62s  shadow: compared 116676, dropped 0, mean PD 0.0392
  round 2 again    19446.0 req/s  p50   0.078 ms  p99   0.711 ms  p99.9   4.309 ms  errors 0.000%  clean 1  ctrd CPU 3.97s

arm       req/s (med)     p50 ms     p99 ms
none            19446      0.078     1.8945
  first       19446.0      0.078      2.597
  again       19446.0      0.078      1.389
shadow        19446.0      0.082      2.875
offered rate: 19446 req/s (half of peak 38892.0)
shadow compared 116676 examples, dropped 0 (100.0% kept), mean PD 0.0392 (median of the shadow runs)
p99 shadow / none, round by round: 0.71 1.34 0.42 8.87 1.10
p99 again / none (A/A control), round by round: 0.15 0.82 0.07 0.43 2.48; of the medians: 0.535
p99 shadow / none: 1.518 (target <= 1.10): NOT met, not resolved (A/A 0.54)
throughput shadow / none: 1.000 (target >= 1, no lower): met
wrote /tmp/p10/shadow.md and /tmp/p10/shadow.tsv
"""

# 1. Nothing measured at all.
p, md, readme = run({})
check(p.returncode == 0, "empty out dir: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
check("## 9. Quantized tables" in md, "empty out dir: part 9 section present")
check("_not run_" in section9(md), "empty out dir: part 9 says not run")

# 2. Part 9 whole.
p, md, readme = run({"quant.txt": QTXT, "quant_sizes.tsv": SIZES, "quant_gather.tsv": GATHER,
                     "quant_paging.tsv": PAGING, "quant_uniform.tsv": UNIFORM})
s9 = section9(md)
check(p.returncode == 0, "part 9 whole: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
for want in ("| int8 vs fp32: 32.0 GB fp32 model and its 12.0 GB int8 form, uniform random rows",
             "p99 8.9 ms vs 536 ms", "| 134,016 ex/s | fp32 model, same load: 736 ex/s | 182x |",
             "| int8 vs fp32: embedding gather from 0.75 GB of tables", "| 24.8 M rows/s |", "| 1.71x |",
             "| fp16 vs fp32: embedding gather from 1.00 GB of tables",
             "| int8 gather vs plain random read, same 0.75 GB of tables: rows/s |",
             "| int8 vs fp32: model file, dim 16 tables (row rule 0.375) | 376 MB | the fp32 file: 1,001 MB | 0.375x |",
             "| int8 vs fp32: model file, dim 128 tables (row rule 0.266) |",
             "| 128 | 75,120 | int8 | 269.2 MB | 0.268 | 0.266 |",
             "| int8 | 0.75 GB | 24 | 24.8 M | 1.71x | 53.6 M | 0.46 |",
             "17,332, 12,371, 16,414 | 16,414 | 1x |", "| none (`MADV_NORMAL`) | 1,180, 1,282, 980 | 1,180 | 0.0719x |",
             "| int8 | 12.00 GB | 46.0 s | 11.20 GiB (1.00) |",
             "<details><summary>bench_quant.sh output</summary>"):
    check(want in s9, "part 9 whole: section has %r" % want)
check("Not run in this run" not in s9, "part 9 whole: nothing listed as skipped")
hl = md[md.find("## Headline"):md.find("## 1.")]
check("| MADV_RANDOM vs no advice" in hl, "part 9 whole: paging row in BENCHMARKS headline")
check("int8 vs fp32: ctrd resident memory" not in hl, "part 9 whole: RSS rows not in the headline")
check("int8 vs fp32: model file, dim 128" not in hl, "part 9 whole: only dim 16's file row in the headline")
for want in ("int8 form, uniform random rows", "| 182x | - |",
             "fp16 vs fp32: embedding gather", "int8 gather vs plain random read",
             "int8 vs fp32: model file, dim 16 tables"):
    check(want in readme, "part 9 whole: README block has %r" % want)
check("MADV_RANDOM" not in readme and "dim 128" not in readme and "resident memory" not in readme,
      "part 9 whole: README block has only the chosen part 9 rows")
check(readme.startswith("# ctrd\n\nBefore.\n\n") and readme.endswith("\n\nAfter.\n"),
      "README: only the BENCH_TABLE line replaced")

# 3. Part 9 without 9c/9d (what QUANT_BIG_GB=0 or a small disk leaves: header-only TSVs).
p, md, readme = run({"quant.txt": QTXT + "\n9c/9d: skipped (QUANT_BIG_GB=0, QUANT_PARTS=a b c d)\n",
                     "quant_sizes.tsv": SIZES, "quant_gather.tsv": GATHER,
                     "quant_paging.tsv": PAGING_HEAD, "quant_uniform.tsv": UNIFORM_HEAD})
s9 = section9(md)
check(p.returncode == 0, "9c/9d skipped: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
check("Not run in this run: 9c/9d: skipped (QUANT_BIG_GB=0" in s9, "9c/9d skipped: says so")
check("uniform random rows, 2" not in s9 and "MADV_RANDOM vs" not in s9, "9c/9d skipped: no 9c/9d rows")
check("| int8 vs fp32: model file, dim 16 tables" in s9, "9c/9d skipped: 9a rows still there")

# 4. Only the gathers (QUANT_PARTS=b), no quant.txt.
p, md, readme = run({"quant_gather.tsv": GATHER})
check(p.returncode == 0, "gathers only: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
check("| int8 vs fp32: embedding gather" in section9(md), "gathers only: gather rows there")

# 5. A run cut short: a sizes row without its load figures, a uniform row half written.
p, md, readme = run({"quant_sizes.tsv": SIZES + "32\tint8\t300480\t313500000\t312000000\t0.3132\t330000\n",
                     "quant_uniform.tsv": UNIFORM_HEAD + UNIFORM.splitlines()[1] + "\nscale-t32g-int8.ctrm\tint8\n"})
s9 = section9(md)
check(p.returncode == 0, "partial rows: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
check("| 16 | 600,961 | int8 |" in s9 and "| 32 |" not in s9, "partial rows: the complete rows only")
check("| fp32 | 32.00 GB |" in s9 and "int8 form, uniform" not in s9, "partial rows: no fp32/int8 row without int8")

# 6. Part 10 (the shadow candidate): absent, then a real run's output. Its
# rows carry the run's medians and ratios, the p99 target judged not met,
# and part 9's section does not run into it.
check("_not run_" in section10(md), "no shadow.txt: part 10 says not run")
p, md, readme = run({"shadow.txt": SHADOW})
s10 = section10(md)
check(p.returncode == 0, "part 10: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
for want in ("34,092 req/s, half", "(68,185 req/s)", "| 9.21 ms | no shadow: 1.89 ms | 4.88x |",
             "| 34,092 req/s | no shadow: 34,092 req/s | 1x |", "(96.8% kept)"):
    check(want in s10, "part 10: section has %r" % want)
row = [l for l in s10.splitlines() if l.startswith("| shadow at sample 1.0, primary p99")]
check(len(row) == 1 and "missed" in row[0], "part 10: the p99 row says missed (%r)" % row)
row = [l for l in s10.splitlines() if l.startswith("| shadow at sample 1.0, primary 2xx throughput")]
check(len(row) == 1 and "missed" not in row[0], "part 10: the throughput row is not missed (%r)" % row)
check("shadow" not in section9(md).lower(), "part 10: not inside part 9's section")
check("shadow at sample 1.0, primary p99" in readme, "part 10: README block has the p99 row")

# 7. Part 10 with the A/A control: where each ran, and the control's
# ratios, which here are wider than the target (so the miss is unresolved).
p, md, readme = run({"shadow.txt": SHADOW_AA})
s10 = section10(md)
check(p.returncode == 0, "part 10 A/A: report.py exits 0 (%s)" % p.stderr.strip()[-300:])
for want in ("ctrd (primary and shadow) on CPUs 0-0, ctrload on CPUs 1-1 (taskset)",
             "| 2.88 ms | no shadow: 1.89 ms | 1.52x |",
             "round by round: 0.15 0.82 0.07 0.43 2.48; of the medians: 0.535",
             "a miss here is not resolved by this run"):
    check(want in s10, "part 10 A/A: section has %r" % want)
check("client, server and shadow sharing" not in s10, "part 10 A/A: the placement is the run's own")
# An old run (no A/A line) says nothing of a control.
p, md, readme = run({"shadow.txt": SHADOW})
check("A/A control" not in section10(md) and "2 cores shared by client, server and shadow" in section10(md),
      "part 10 old output: no A/A sentence, its own placement line")
# A control within the target says so, and not "not resolved".
p, md, readme = run({"shadow.txt": SHADOW_AA.replace("0.15 0.82 0.07 0.43 2.48; of the medians: 0.535",
                                                     "1.02 0.97 1.05 1.01 0.99; of the medians: 1.010")})
s10 = section10(md)
check("it is within the 10% target" in s10 and "not resolved" not in s10.split("A/A control")[1][:400],
      "part 10 A/A within target: says so")

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
