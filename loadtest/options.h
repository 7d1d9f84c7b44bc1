/* options.h - ctrload's settings: the flags, their defaults, --help, and
 * the checks between flags.
 *
 * ctr__load_opts_parse fills a ctr__load_opts_t from argv through one table
 * for the shared flag parser (include/ctr/opts.h: --flag VALUE and
 * --flag=VALUE, every value parsed once into its field, enums into their
 * enum), then checks every combination before anything is prepared, so the
 * drivers (run.c, sweep.c, replay_drive.c) can trust what they read here.
 * ctrload's flags have no environment twins. The strings point into argv. */
#ifndef CTR_LOADTEST_OPTIONS_H
#define CTR_LOADTEST_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "bodies.h"
#include "ctr/data.h"
#include "ctr/opts.h"
#include "schedule.h"

/* Keep-alive connections of an open loop without --connections. */
#define CTR__LOAD_OPEN_CONNECTIONS 64

/* --sweep FROM:TO:STEP, parsed once into its rates. */
typedef struct {
    int on;
    double from, to, step;
} ctr__load_sweep_t;

typedef struct {
    const char *url;
    double rate;
    size_t concurrency;
    ctr__load_sweep_t sweep;
    int sweep_all;
    double slo_p99_ms;             /* -1: not given */
    double max_error_pct;
    uint64_t duration_ns, warmup_ns, timeout_ns;
    int duration_set, warmup_set;  /* given on the command line */
    ctr__arrival_t arrival;
    size_t connections;            /* 0: not given */
    int synthetic;
    int synthetic_cats;            /* ctr__cats_t; -1: not given (zipf) */
    const char *data;
    ctr_data_format_t format;
    const char *label, *dense, *categorical;
    char delimiter;
    uint64_t max_rows;
    int skip_bad;
    size_t examples;
    ctr__proto_t protocol;
    const char *model_name;
    int context_split;
    size_t bodies;
    uint64_t seed;
    int print_request;
    ctr_opt_list_t replay;         /* the log paths; replay.v is owned */
    const char *replay_format;
    double replay_speed;
    int replay_loop;
    const char *json, *csv, *dist_csv;
    int quiet, progress;           /* progress: -1 auto */
    int strict;
    double max_lag_ms, max_cpu_pct;
    int version;
} ctr__load_opts_t;

/* Fills *o from argv. --help and --version print and exit(0) here.
 * Returns 0, or 2 (the exit status for bad flags) after saying why on
 * stderr. Either way ctr__load_opts_free(o) releases what it holds. */
int ctr__load_opts_parse(int argc, char **argv, ctr__load_opts_t *o);
void ctr__load_opts_free(ctr__load_opts_t *o);

/* Prints "ctrload: MESSAGE" on stderr and returns 2: the exit status for
 * bad flags, bad data, or a server that could not be reached. */
int ctr__load_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
