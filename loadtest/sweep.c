/* sweep.c - open-loop runs at a series of rates against a p99 target
 * (see sweep.h). */
#include "sweep.h"

#include <math.h>
#include <stdlib.h>

#include "report.h"

int ctr__sweep_rates(ctr__plan_t *p, const ctr__load_opts_t *o)
{
    char err[512] = "";
    ctr__run_result_t *res = malloc(sizeof *res);
    if (!res)
        return ctr__load_die("out of memory");
    int status = 0;
    size_t n_steps = (size_t)floor((o->sweep.to - o->sweep.from) / o->sweep.step + 1e-9) + 1;
    double best = -1;
    int fails_in_row = 0;
    if (p->json)
        fprintf(p->json, "{\"sweep\":{\"from\":%.6g,\"to\":%.6g,\"step\":%.6g,\"slo_p99_ms\":%.6g,"
                         "\"max_error_pct\":%.6g},\n\"steps\":[\n",
                o->sweep.from, o->sweep.to, o->sweep.step, o->slo_p99_ms, o->max_error_pct);
    if (!o->quiet)
        fprintf(p->txt, "sweep %s, %.6g to %.6g req/s by %.6g, target p99 <= %.6g ms, %zu connections, "
                        "%.3g s each after %.3g s warmup\n\n"
                        "%10s %10s %10s %9s %9s %9s %9s %9s %8s %6s  %s\n",
                p->full_url, o->sweep.from, o->sweep.to, o->sweep.step, o->slo_p99_ms, p->ro.connections,
                p->d.duration_s, p->d.warmup_s, "rate", "sent/s", "2xx/s", "p50", "p90", "p99", "p99.9",
                "max", "errors", "clean", "meets");
    int any_unclean = 0;
    size_t ran = 0;
    for (size_t s = 0; s < n_steps; s++) {
        double rate = o->sweep.from + (double)s * o->sweep.step;
        p->ro.rate = rate;
        p->d.rate = rate;
        p->ro.id_base += (uint64_t)1 << 32;
        if (ctr__run(&p->ro, res, err, sizeof err)) {
            status = ctr__load_die("%s", err);
            goto out;
        }
        ran++;
        ctr__verdict_t v;
        ctr__verdict(&p->d, res, &v);
        int meets = ctr__meets_slo(res, &v, o->slo_p99_ms, o->max_error_pct);
        any_unclean |= !v.clean;
        if (meets && rate > best)
            best = rate;
        ctr__pct_t pc;
        ctr__pct(&res->lat, &pc);
        if (!o->quiet) {
            fprintf(p->txt, "%10.6g %10.1f %10.1f %9.3f %9.3f %9.3f %9.3f %9.3f %8llu %6s  %s\n", rate,
                    (double)res->sent / res->window_s, (double)res->ok / res->window_s, pc.p50, pc.p90,
                    pc.p99, pc.p999, pc.max,
                    (unsigned long long)(res->failed + res->completed - res->ok), v.clean ? "yes" : "NO",
                    meets ? "yes" : "no");
            for (int i = 0; i < v.n_reasons; i++)
                fprintf(p->txt, "%10s - %s\n", "", v.reasons[i]);
            fflush(p->txt);
        }
        if (p->json) {
            if (s)
                fprintf(p->json, ",\n");
            ctr__report_json_run(p->json, &p->d, res, &v, meets);
        }
        if (p->csv)
            ctr__report_csv_row(p->csv, &p->d, res, &v, meets);
        /* Higher rates are pointless once the server is past its
         * capacity: two misses in a row after a rate that met the
         * target, or answers falling 10% short of the offered rate. */
        if (res->interrupted) {
            if (!o->quiet)
                fprintf(p->txt, "(interrupted: the last rate ran %.1f s, the sweep stops here)\n", res->window_s);
            break;
        }
        fails_in_row = meets ? 0 : fails_in_row + 1;
        int saturated = (double)res->ok < 0.9 * (double)res->scheduled;
        if (!o->sweep_all && s + 1 < n_steps && ((best > 0 && fails_in_row >= 2) || saturated)) {
            if (!o->quiet)
                fprintf(p->txt, "(%s: stopping here; --sweep-all runs every rate)\n",
                        saturated ? "the server answered under 90% of the offered rate"
                                  : "two rates in a row missed the target");
            break;
        }
    }
    if (!o->quiet) {
        if (best > 0)
            fprintf(p->txt, "\nhighest rate meeting p99 <= %.6g ms: %.6g req/s\n", o->slo_p99_ms, best);
        else
            fprintf(p->txt, "\nno rate met p99 <= %.6g ms\n", o->slo_p99_ms);
        if (any_unclean)
            fprintf(p->txt, "(some runs were not clean: ctrload itself could not keep up there; such "
                            "runs never count as meeting the target)\n");
    }
    if (p->json) {
        fprintf(p->json, "\n],\n\"steps_run\":%zu,\"best_rate\":", ran);
        if (best > 0)
            fprintf(p->json, "%.6g", best);
        else
            fprintf(p->json, "null");
        fprintf(p->json, "}\n");
    }
    if (o->strict && best <= 0)
        status = 1;
out:
    free(res);
    return status;
}
