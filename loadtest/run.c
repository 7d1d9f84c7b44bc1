/* run.c - one run and its report (see run.h). */
#include "run.h"

#include <stdlib.h>

#include "report.h"

int ctr__run_single(ctr__plan_t *p, const ctr__load_opts_t *o)
{
    char err[512] = "";
    ctr__run_result_t *res = malloc(sizeof *res);
    if (!res)
        return ctr__load_die("out of memory");
    int status = 0;
    if (ctr__run(&p->ro, res, err, sizeof err)) {
        status = ctr__load_die("%s", err);
        goto out;
    }
    ctr__verdict_t v;
    ctr__verdict(&p->d, res, &v);
    int meets = o->slo_p99_ms > 0 ? ctr__meets_slo(res, &v, o->slo_p99_ms, o->max_error_pct) : -1;
    if (res->interrupted)
        fprintf(stderr, "ctrload: interrupted: the report covers the first %.1f s\n", res->window_s);
    else if (o->replay.n && !o->replay_loop && !res->hit_max_requests)
        fprintf(stderr, "ctrload: --duration ended the replay before every logged request was sent\n");
    if (!o->quiet) {
        ctr__report_text(p->txt, &p->d, res, &v);
        if (meets >= 0)
            fprintf(p->txt, "slo          corrected p99 %.3f ms, target %.3g ms: %s\n",
                    (double)ctr__hist_percentile(&res->lat, 99) / 1e6, o->slo_p99_ms,
                    meets ? "met" : "MISSED");
    }
    if (p->json) {
        ctr__report_json_run(p->json, &p->d, res, &v, meets);
        fputc('\n', p->json);
    }
    if (p->csv)
        ctr__report_csv_row(p->csv, &p->d, res, &v, meets);
    if (o->dist_csv) {
        FILE *df = ctr__report_open(o->dist_csv, err, sizeof err);
        if (!df) {
            status = ctr__load_die("%s", err);
            goto out;
        }
        ctr__report_dist_csv(df, res);
        if (ctr__report_close(df, o->dist_csv, err, sizeof err)) {
            status = err[0] ? ctr__load_die("%s", err) : 2;
            goto out;
        }
    }
    if (o->strict && (!v.clean || meets == 0))
        status = 1;
out:
    free(res);
    return status;
}
