/* plan.h - everything the runs of one ctrload invocation share, prepared
 * before any clock starts: the framed requests (synthetic, from --data, or
 * replayed), the server's address, the run options and report description
 * (open or closed loop, replay pacing), and the output files.
 *
 * main.c makes the plan, then hands it to a driver: run.c (one run) or
 * sweep.c (a run per rate). The drivers may change ro.rate, ro.id_base and
 * d.rate between runs; everything else is fixed here. */
#ifndef CTR_LOADTEST_PLAN_H
#define CTR_LOADTEST_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "bodies.h"
#include "loop.h"
#include "options.h"
#include "report.h"

typedef struct {
    ctr__msgset_t *msgs;          /* framed */
    ctr__run_opts_t ro;           /* points into this plan: keep it where it is */
    ctr__run_desc_t d;
    FILE *json, *csv;             /* --json / --csv; NULL when not asked for */
    FILE *txt;                    /* the summary: stdout, or stderr when --json
                                     or --csv writes to stdout */
    const char *json_path, *csv_path;
    char full_url[1500];
    char source[600];
    char target[300];
    struct addrinfo *ai;
    uint64_t *trace;              /* replay at the logged pace, else NULL */
} ctr__plan_t;

/* Prepares the plan for o into *out (the caller's: ctr__plan_close).
 * With --print-request it stops once the requests are framed: no address,
 * no outputs. stop is the flag that ends a run early (loop.h). Returns 0,
 * or a CTR_E* code with a sentence in err and *out = NULL. */
int ctr__plan_open(const ctr__load_opts_t *o, volatile int *stop, ctr__plan_t **out,
                   char *err, size_t errlen);

/* The first request as it goes on the wire (id 0), for --print-request. */
void ctr__plan_print_request(const ctr__plan_t *p, FILE *f);

/* Closes the outputs and frees the plan; NULL is fine. Returns 0, or -1
 * when an output did not reach its file (each said on stderr). */
int ctr__plan_close(ctr__plan_t *p);

#endif
