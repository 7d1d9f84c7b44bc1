/* sweep.h - the sweep driver (--sweep FROM:TO:STEP --slo-p99-ms X): open-
 * loop runs of the plan at rates FROM, FROM+STEP, ... TO, a table of
 * their figures, and the highest rate that met the target.
 *
 * A rate meets the target when its verdict is clean, its corrected p99 is
 * at most X ms and its errors at most --max-error-pct (report.h,
 * ctr__meets_slo). Higher rates are skipped (unless --sweep-all) once the
 * server answers under 90% of the offered rate, or after two misses in a
 * row that follow a pass; Ctrl-C ends the sweep after the current rate. */
#ifndef CTR_LOADTEST_SWEEP_H
#define CTR_LOADTEST_SWEEP_H

#include "options.h"
#include "plan.h"

/* Runs the sweep and reports. Returns the exit status: 0, 1 with --strict
 * when no rate met the target, 2 (said on stderr) when the server could
 * not be reached. */
int ctr__sweep_rates(ctr__plan_t *p, const ctr__load_opts_t *o);

#endif
