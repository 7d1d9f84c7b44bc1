/* run.h - the single-run driver: one run of the plan (--rate,
 * --concurrency, or --replay), then its report as text, JSON, CSV and the
 * latency distribution (--dist-csv), and the --slo-p99-ms check. */
#ifndef CTR_LOADTEST_RUN_H
#define CTR_LOADTEST_RUN_H

#include "options.h"
#include "plan.h"

/* Runs p once and reports. Returns the exit status: 0, 1 with --strict
 * when the verdict is not clean or the target was missed, 2 (said on
 * stderr) when the server could not be reached or an output failed. */
int ctr__run_single(ctr__plan_t *p, const ctr__load_opts_t *o);

#endif
