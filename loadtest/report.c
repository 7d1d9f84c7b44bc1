/* report.c - text, JSON and CSV reports and the verdict (see report.h). */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/json_text.h"

/* A JSON string literal (NULL: ""), through the one escaper of ctr. */
static void json_str(FILE *f, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char small[1024], *out = small;
    size_t len = ctr_json_escape(small, sizeof small, s, n, CTR_JSON_INVALID_REPLACE, NULL);
    if (len > sizeof small) {
        out = malloc(len);
        if (!out) {
            fputs("\"\"", f);
            return;
        }
        ctr_json_escape(out, len, s, n, CTR_JSON_INVALID_REPLACE, NULL);
    }
    fwrite(out, 1, len, f);
    if (out != small)
        free(out);
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

void ctr__pct(const ctr__hist_t *h, ctr__pct_t *p)
{
    p->p50 = ms(ctr__hist_percentile(h, 50));
    p->p90 = ms(ctr__hist_percentile(h, 90));
    p->p99 = ms(ctr__hist_percentile(h, 99));
    p->p999 = ms(ctr__hist_percentile(h, 99.9));
    p->max = ms(ctr__hist_percentile(h, 100));
    p->mean = ctr__hist_mean(h) / 1e6;
    p->count = h->count;
}

void ctr__verdict(const ctr__run_desc_t *d, const ctr__run_result_t *r, ctr__verdict_t *v)
{
    memset(v, 0, sizeof *v);
    double lag99 = ms(ctr__hist_percentile(&r->lag, 99));
    if (r->lag.count && lag99 > d->max_lag_ms) {
        v->behind = 1;
        snprintf(v->reasons[v->n_reasons++], sizeof v->reasons[0],
                 "ctrload fell behind its schedule: p99 of its own send lag is %.3f ms, over the "
                 "%.3g ms bound (--max-lag-ms)", lag99, d->max_lag_ms);
    }
    if (r->cpu_frac >= d->max_cpu) {
        v->cpu_saturated = 1;
        snprintf(v->reasons[v->n_reasons++], sizeof v->reasons[0],
                 "ctrload's CPU was saturated: %.0f%% of a core (bound %.0f%%, --max-cpu-pct); "
                 "the figures may measure the client, not the server",
                 100 * r->cpu_frac, 100 * d->max_cpu);
    }
    v->clean = v->n_reasons == 0;
}

int ctr__meets_slo(const ctr__run_result_t *r, const ctr__verdict_t *v, double slo_p99_ms,
                   double max_error_pct)
{
    uint64_t denom = r->scheduled ? r->scheduled : r->sent;
    uint64_t bad = r->failed + (r->completed - r->ok);
    double err_pct = denom ? 100.0 * (double)bad / (double)denom : 100.0;
    double p99 = (double)ctr__hist_percentile(&r->lat, 99) / 1e6;
    return v->clean && r->lat.count > 0 && p99 <= slo_p99_ms && err_pct <= max_error_pct;
}

static double per_s(uint64_t n, double s) { return s > 0 ? (double)n / s : 0; }

static uint64_t conn_errors(const ctr__run_result_t *r)
{
    uint64_t n = 0;
    for (int k = CTR__ERR_FIRST_CONN; k < CTR__ERR_N; k++)
        n += r->err[k];
    return n;
}

static void pct_row(FILE *f, const char *name, const ctr__pct_t *p)
{
    fprintf(f, "  %-12s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", name, p->p50, p->p90, p->p99,
            p->p999, p->max, p->mean);
}

void ctr__report_text(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                      const ctr__verdict_t *v)
{
    int open = strcmp(d->mode, "closed") != 0;
    fprintf(f, "ctrload %s -> %s\n", d->mode, d->url);
    if (!strcmp(d->mode, "open"))
        fprintf(f, "  %.6g req/s %s arrivals", d->rate, d->arrival);
    else if (!strcmp(d->mode, "closed"))
        fprintf(f, "  %zu in flight", d->concurrency);
    else if (d->rate > 0)
        fprintf(f, "  replayed at %.6g req/s", d->rate);
    else if (d->concurrency)
        fprintf(f, "  replayed with %zu in flight", d->concurrency);
    else
        fprintf(f, "  replayed with the logged pacing");
    fprintf(f, ", %zu connection%s, %.3g s measured after %.3g s warmup, timeout %.3g s\n",
            d->connections, d->connections == 1 ? "" : "s", d->duration_s, d->warmup_s, d->timeout_s);
    if (d->examples)
        fprintf(f, "  %s bodies, %zu example%s per request, %s\n", d->protocol, d->examples,
                d->examples == 1 ? "" : "s", d->source);
    else
        fprintf(f, "  %s bodies, %s\n", d->protocol, d->source);
    fprintf(f, "\n");

    double w = r->window_s;
    fprintf(f, "requests     ");
    if (open)
        fprintf(f, "scheduled %llu  ", (unsigned long long)r->scheduled);
    fprintf(f, "sent %llu  answered %llu  2xx %llu  failed %llu\n", (unsigned long long)r->sent,
            (unsigned long long)r->completed, (unsigned long long)r->ok, (unsigned long long)r->failed);
    fprintf(f, "throughput   ");
    if (open)
        fprintf(f, "offered %.1f/s  ", per_s(r->scheduled, w));
    fprintf(f, "sent %.1f/s  answered %.1f/s  2xx %.1f/s  examples %.1f/s\n", per_s(r->sent, w),
            per_s(r->completed, w), per_s(r->ok, w), per_s(r->examples_ok, w));
    fprintf(f, "status      ");
    int any = 0;
    for (int s = 100; s < 600; s++)
        if (r->status[s]) {
            fprintf(f, " %d: %llu", s, (unsigned long long)r->status[s]);
            any = 1;
        }
    fprintf(f, "%s\n", any ? "" : " (no answers)");
    if (r->first_error_status) {
        fprintf(f, "             first non-2xx (%d): ", r->first_error_status);
        size_t n = strlen(r->first_error_body);
        while (n && (unsigned char)r->first_error_body[n - 1] <= ' ')
            n--;
        for (size_t i = 0; i < n; i++) {
            char c = r->first_error_body[i];
            fputc((c >= 0x20 && c < 0x7f) ? c : '.', f);
        }
        fputc('\n', f);
    }
    uint64_t ce = conn_errors(r);
    if (!r->failed && !ce) {
        fprintf(f, "errors       none\n");
    } else {
        fprintf(f, "errors\n");
        for (int k = 0; k < CTR__ERR_N; k++) {
            if (!r->err[k])
                continue;
            fprintf(f, "  %10llu  %s", (unsigned long long)r->err[k], ctr__err_text((ctr__err_kind_t)k));
            if (r->err_example[k][0])
                fprintf(f, " (%s)", r->err_example[k]);
            fputc('\n', f);
        }
    }
    if (r->server_closes)
        fprintf(f, "             the server ended %llu keep-alive connections (reconnected; not an error)\n",
                (unsigned long long)r->server_closes);

    ctr__pct_t pc, pu;
    ctr__pct(&r->lat, &pc);
    ctr__pct(&r->lat_uncorr, &pu);
    fprintf(f, "\nlatency (ms)        p50       p90       p99     p99.9       max      mean\n");
    if (open) {
        pct_row(f, "corrected", &pc);
        pct_row(f, "uncorrected", &pu);
        fprintf(f, "  (corrected: from when each request was due; uncorrected: from when it was sent)\n");
    } else {
        pct_row(f, "from send", &pc);
        fprintf(f, "  (closed loop: a slow answer delays the next send, so stalls are under-counted;\n"
                   "   use --rate for latency corrected for coordinated omission)\n");
    }
    fprintf(f, "\nclient       cpu %.0f%% of a core, send lag p99 %.3f ms max %.3f ms",
            100 * r->cpu_frac, ms(ctr__hist_percentile(&r->lag, 99)), ms(r->lag.count ? r->lag.max : 0));
    if (open && r->waited_for_conn)
        fprintf(f, ",\n             %llu requests waited for a free connection (longest %.3f ms)",
                (unsigned long long)r->waited_for_conn, ms(r->conn_wait_max_ns));
    fputc('\n', f);
    if (v->clean) {
        fprintf(f, "verdict      clean\n");
    } else {
        fprintf(f, "verdict      NOT CLEAN - these figures do not describe the server alone:\n");
        for (int i = 0; i < v->n_reasons; i++)
            fprintf(f, "             - %s\n", v->reasons[i]);
    }
}

static void json_pct(FILE *f, const char *name, const ctr__pct_t *p)
{
    fprintf(f, "\"%s\":{\"count\":%llu,\"p50\":%.6f,\"p90\":%.6f,\"p99\":%.6f,\"p99_9\":%.6f,"
               "\"max\":%.6f,\"mean\":%.6f}",
            name, (unsigned long long)p->count, p->p50, p->p90, p->p99, p->p999, p->max, p->mean);
}

void ctr__report_json_run(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                          const ctr__verdict_t *v, int meets)
{
    double w = r->window_s;
    fprintf(f, "{\"url\":");
    json_str(f, d->url);
    fprintf(f, ",\"mode\":\"%s\"", d->mode);
    if (strcmp(d->mode, "closed"))
        fprintf(f, ",\"rate\":%.6g,\"arrival\":\"%s\"", d->rate, d->arrival ? d->arrival : "trace");
    else
        fprintf(f, ",\"concurrency\":%zu", d->concurrency);
    fprintf(f, ",\"connections\":%zu,\"duration_s\":%.6g,\"warmup_s\":%.6g,\"timeout_s\":%.6g,"
               "\"examples_per_request\":%zu,\"protocol\":\"%s\",\"source\":",
            d->connections, d->duration_s, d->warmup_s, d->timeout_s, d->examples, d->protocol);
    json_str(f, d->source);
    fprintf(f, ",\n \"requests\":{\"scheduled\":%llu,\"sent\":%llu,\"completed\":%llu,\"ok\":%llu,"
               "\"failed\":%llu,\"examples_sent\":%llu,\"examples_ok\":%llu}",
            (unsigned long long)r->scheduled, (unsigned long long)r->sent,
            (unsigned long long)r->completed, (unsigned long long)r->ok,
            (unsigned long long)r->failed, (unsigned long long)r->examples_sent,
            (unsigned long long)r->examples_ok);
    fprintf(f, ",\n \"throughput\":{\"offered_rps\":%.3f,\"sent_rps\":%.3f,\"completed_rps\":%.3f,"
               "\"ok_rps\":%.3f,\"examples_per_s\":%.3f}",
            strcmp(d->mode, "closed") ? per_s(r->scheduled, w) : per_s(r->sent, w), per_s(r->sent, w),
            per_s(r->completed, w), per_s(r->ok, w), per_s(r->examples_ok, w));
    fprintf(f, ",\n \"status\":{");
    int first = 1;
    for (int s = 100; s < 600; s++)
        if (r->status[s]) {
            fprintf(f, "%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)r->status[s]);
            first = 0;
        }
    fprintf(f, "}");
    if (r->first_error_status) {
        fprintf(f, ",\"first_error\":{\"status\":%d,\"body\":", r->first_error_status);
        json_str(f, r->first_error_body);
        fprintf(f, "}");
    }
    fprintf(f, ",\n \"errors\":{");
    for (int k = 0; k < CTR__ERR_N; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", ctr__err_key((ctr__err_kind_t)k),
                (unsigned long long)r->err[k]);
    fprintf(f, ",\"connection_errors\":%llu,\"server_closed_keepalive\":%llu}",
            (unsigned long long)conn_errors(r), (unsigned long long)r->server_closes);
    ctr__pct_t pc, pu, pl;
    ctr__pct(&r->lat, &pc);
    ctr__pct(&r->lat_uncorr, &pu);
    ctr__pct(&r->lag, &pl);
    fprintf(f, ",\n \"latency_ms\":{");
    json_pct(f, "corrected", &pc);
    fprintf(f, ",");
    json_pct(f, "uncorrected", &pu);
    fprintf(f, "}");
    fprintf(f, ",\n \"client\":{\"cpu_fraction\":%.4f,\"cpu_s\":%.3f,\"elapsed_s\":%.3f,", r->cpu_frac,
            r->cpu_s, r->elapsed_s);
    json_pct(f, "send_lag_ms", &pl);
    fprintf(f, ",\"waited_for_connection\":%llu,\"longest_connection_wait_ms\":%.3f,"
               "\"connects\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu}",
            (unsigned long long)r->waited_for_conn, ms(r->conn_wait_max_ns),
            (unsigned long long)r->connects, (unsigned long long)r->bytes_sent,
            (unsigned long long)r->bytes_recv);
    fprintf(f, ",\n \"verdict\":{\"clean\":%s,\"behind_schedule\":%s,\"cpu_saturated\":%s,"
               "\"max_lag_ms\":%.6g,\"max_cpu_fraction\":%.4g,\"reasons\":[",
            v->clean ? "true" : "false", v->behind ? "true" : "false",
            v->cpu_saturated ? "true" : "false", d->max_lag_ms, d->max_cpu);
    for (int i = 0; i < v->n_reasons; i++) {
        if (i)
            fputc(',', f);
        json_str(f, v->reasons[i]);
    }
    fprintf(f, "]}");
    if (r->interrupted)
        fprintf(f, ",\"interrupted\":true");
    if (meets >= 0)
        fprintf(f, ",\"meets_slo\":%s", meets ? "true" : "false");
    fprintf(f, "}");
}

void ctr__report_csv_header(FILE *f)
{
    fprintf(f, "mode,rate,concurrency,connections,examples_per_request,duration_s,scheduled,sent,"
               "completed,ok,failed,offered_rps,sent_rps,completed_rps,ok_rps,examples_per_s,"
               "p50_ms,p90_ms,p99_ms,p999_ms,max_ms,mean_ms,"
               "uncorrected_p50_ms,uncorrected_p90_ms,uncorrected_p99_ms,uncorrected_p999_ms,"
               "uncorrected_max_ms,uncorrected_mean_ms,send_lag_p99_ms,cpu_pct,clean,meets_slo\n");
}

void ctr__report_csv_row(FILE *f, const ctr__run_desc_t *d, const ctr__run_result_t *r,
                         const ctr__verdict_t *v, int meets)
{
    double w = r->window_s;
    ctr__pct_t pc, pu;
    ctr__pct(&r->lat, &pc);
    ctr__pct(&r->lat_uncorr, &pu);
    int closed = !strcmp(d->mode, "closed");
    fprintf(f, "%s,%.6g,%zu,%zu,%zu,%.6g,%llu,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%.3f,%.3f,"
               "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f,%d,%s\n",
            d->mode, closed ? 0.0 : d->rate, closed ? d->concurrency : 0, d->connections, d->examples,
            d->duration_s, (unsigned long long)r->scheduled, (unsigned long long)r->sent,
            (unsigned long long)r->completed, (unsigned long long)r->ok, (unsigned long long)r->failed,
            closed ? per_s(r->sent, w) : per_s(r->scheduled, w), per_s(r->sent, w),
            per_s(r->completed, w), per_s(r->ok, w), per_s(r->examples_ok, w), pc.p50, pc.p90, pc.p99,
            pc.p999, pc.max, pc.mean, pu.p50, pu.p90, pu.p99, pu.p999, pu.max, pu.mean,
            ms(ctr__hist_percentile(&r->lag, 99)), 100 * r->cpu_frac, v->clean,
            meets < 0 ? "" : meets ? "1" : "0");
}

void ctr__report_dist_csv(FILE *f, const ctr__run_result_t *r)
{
    fprintf(f, "percentile,corrected_ms,uncorrected_ms\n");
    for (int k = 0; k <= 50; k++) {
        double q = 100.0 * (1.0 - pow(10.0, -k / 10.0));
        fprintf(f, "%.6f,%.6f,%.6f\n", q, ms(ctr__hist_percentile(&r->lat, q)),
                ms(ctr__hist_percentile(&r->lat_uncorr, q)));
    }
    fprintf(f, "100,%.6f,%.6f\n", ms(ctr__hist_percentile(&r->lat, 100)),
            ms(ctr__hist_percentile(&r->lat_uncorr, 100)));
}

FILE *ctr__report_open(const char *path, char *err, size_t errlen)
{
    if (!strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        ctr_error(err, errlen, ctr_errno_code(e), "cannot write %s: %s", path, strerror(e));
    }
    return f;
}

int ctr__report_close(FILE *f, const char *path, char *err, size_t errlen)
{
    if (f == stdout)
        return fflush(f) ? ctr_errno_code(errno) : 0;
    if (fclose(f)) {
        int e = errno;
        return ctr_error(err, errlen, ctr_errno_code(e), "writing %s: %s", path, strerror(e));
    }
    return 0;
}
