/* report.h - what a run found, for people (text) and programs (JSON, CSV),
 * and the verdict: whether the figures describe the server or were spoiled
 * by the client itself.
 *
 * A run is not clean when
 *   - the client fell behind: the p99 of its own send lag (from when a
 *     request could have gone out to when it did) is over max_lag_ms, or
 *   - its CPU was saturated: user + system time over wall time of the
 *     measured part is at least max_cpu (ctrload's loop is one thread).
 * The figures are still printed, with the reasons, and --strict turns an
 * unclean verdict into exit status 1. */
#ifndef CTR_LOADTEST_REPORT_H
#define CTR_LOADTEST_REPORT_H

#include <stdio.h>

#include "loop.h"

typedef struct {
    const char *url;
    const char *mode;            /* "open", "closed", "replay" */
    const char *arrival;         /* open loop */
    double rate;                 /* open loop; 0 when paced by a trace */
    size_t concurrency;          /* closed loop */
    size_t connections;
    double duration_s, warmup_s, timeout_s;
    size_t examples;             /* per request (0: varies, replay) */
    const char *protocol;        /* "v1", "v2" */
    const char *source;          /* "synthetic", "data FILE", "replay FILE..." */
    double max_lag_ms;
    double max_cpu;              /* fraction of one core */
} ctr__run_desc_t;

typedef struct {
    int clean;
    int behind, cpu_saturated;
    int n_reasons;
    char reasons[2][200];
} ctr__verdict_t;

typedef struct {
    double p50, p90, p99, p999, max, mean;   /* ms */
    uint64_t count;
} ctr__pct_t;

void ctr__verdict(const ctr__run_desc_t *d, const ctr__run_result_t *r, ctr__verdict_t *v);
void ctr__pct(const ctr__hist_t *h, ctr__pct_t *p);
/* 1 if the run meets the target: a clean verdict, answers, corrected p99
 * <= slo_p99_ms, and failed plus non-2xx requests <= max_error_pct of
 * those due (open loop) or sent (closed loop). */
int ctr__meets_slo(const ctr__run_result_t *r, const ctr__verdict_t *v, double slo_p99_ms,
                   double max_error_pct);

/* The summary table. */
void ctr__report_text(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                      const ctr__verdict_t *v);
/* One run as a JSON object (no trailing newline); meets: -1 = not a sweep
 * step, else whether it met the SLO. */
void ctr__report_json_run(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                          const ctr__verdict_t *v, int meets);
void ctr__report_csv_header(FILE *f);
void ctr__report_csv_row(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                         const ctr__verdict_t *v, int meets);
/* Latency distribution: percentile,corrected_ms,uncorrected_ms at
 * percentiles 0, 90, 99, 99.9, ... (ten points a decade of 1/(1-p)), 100. */
void ctr__report_dist_csv(FILE *f, const ctr__run_result_t *r);
/* An output named on the command line: "-" is stdout. NULL with a
 * sentence in err when it cannot be created. */
FILE *ctr__report_open(const char *path, char *err, size_t errlen);
/* Flushes stdout or closes a file: 0, or a negative CTR_E* code with a
 * sentence in err when the data did not reach it (stdout: no sentence). */
int ctr__report_close(FILE *f, const char *path, char *err, size_t errlen);

#endif
