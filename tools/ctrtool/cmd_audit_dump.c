/* ctrtool audit dump - ctrd's audit log as JSON lines: every segment
 * header, record and damaged span (the default), or (--requests) each
 * record as the /v1/score body that reproduces it, for ctrload --replay.
 * The walk over the segments is cmd_audit.c's (audit_int.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_int.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

static void json_double(FILE *f, double v)
{
    if (isnan(v))
        fputs("null", f);
    else if (isinf(v))
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
    else
        fprintf(f, "%.17g", v);
}

static void json_float(FILE *f, float v)
{
    if (isnan(v) || isinf(v)) {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        fprintf(f, "\"0x%08x\"", bits);
    } else {
        fprintf(f, "%.9g", (double)v);
    }
}

typedef struct {
    int values;
    const ctr_model_def_t *names;  /* --requests: feature names from a model */
} dump_ctx_t;

/* --requests: the record as a /v1/score body, one line, with the arrival
 * time as "t_ns" (ctrload --replay reads this). Missing values and empty
 * bags are left out, which the server reads as missing; a bag is an array
 * of its values in slot order. */
static void dump_request(const ctr_model_def_t *def, const ctr_audit_record_t *rec)
{
    FILE *f = stdout;
    size_t slots = ctr_model_slots(def);
    if (rec->n_dense != def->n_dense || rec->n_cat != slots) {
        fprintf(stderr, "ctrtool audit dump: record %s has %zu dense and %zu categorical columns, the "
                        "model %zu and %zu: skipped\n", rec->request_id, rec->n_dense, rec->n_cat,
                def->n_dense, slots);
        return;
    }
    fprintf(f, "{\"t_ns\":%" PRIu64 ",\"request_id\":", rec->t_received_ns);
    ctr__audit_json_str(f, rec->request_id, rec->request_id_len);
    fputs(",\"examples\":[", f);
    for (size_t i = 0; i < rec->n; i++) {
        int first = 1;
        fputs(i ? ",{" : "{", f);
        for (size_t j = 0; j < def->n_dense; j++) {
            double v = ctr_audit_record_dense(rec, i, j);
            if (isnan(v) || isinf(v))
                continue;
            fputs(first ? "" : ",", f);
            first = 0;
            ctr__audit_json_str(f, def->dense[j].name, strlen(def->dense[j].name));
            fputc(':', f);
            json_double(f, v);
        }
        for (size_t j = 0, k = 0; j < def->n_cat; k += ctr_features_width(&def->cat[j]), j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            const char *b;
            size_t l, m = 0;
            for (size_t t = 0; t < ctr_features_width(c); t++) {
                if (!ctr_audit_record_cat(rec, i, k + t, &b, &l))
                    continue;
                if (m++ == 0) {
                    fputs(first ? "" : ",", f);
                    first = 0;
                    ctr__audit_json_str(f, c->name, strlen(c->name));
                    fputs(c->bag_max ? ":[" : ":", f);
                } else {
                    fputc(',', f);
                }
                ctr__audit_json_str(f, b, l);
            }
            if (m && c->bag_max)
                fputc(']', f);
        }
        fputc('}', f);
    }
    fputs("]}\n", f);
}

static void dump_segment(audit_walker_t *w, const char *path, const ctr_audit_reader_t *r)
{
    if (((dump_ctx_t *)w->ctx)->names)
        return;
    const ctr_audit_segment_t *h = ctr_audit_reader_segment(r);
    static const char *const modes[] = {"async", "write", "fsync"};
    fputs("{\"segment\":", stdout);
    ctr__audit_json_str(stdout, path, strlen(path));
    printf(",\"version\":%u,\"server_start_ns\":%" PRIu64 ",\"created_ns\":%" PRIu64 ",\"index\":%" PRIu64
           ",\"first_seq\":%" PRIu64 ",\"pid\":%u,\"durability\":\"%s\",\"host\":",
           h->version, h->server_start_ns, h->created_ns, h->segment_index, h->first_seq, h->pid,
           h->durability < 3 ? modes[h->durability] : "unknown");
    ctr__audit_json_str(stdout, h->host, strlen(h->host));
    fputs(",\"ctrd_version\":", stdout);
    ctr__audit_json_str(stdout, h->version_str, strlen(h->version_str));
    printf(",\"header\":\"%s\"}\n", ctr_audit_reader_header_status(r) ? "crc_mismatch" : "ok");
}

static void dump_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    dump_ctx_t *d = w->ctx;
    FILE *f = stdout;
    if (d->names) {
        dump_request(d->names, rec);
        return;
    }
    char digest[72];
    ctr_audit_digest_str(rec->digest, digest);
    fputs("{\"file\":", f);
    ctr__audit_json_str(f, path, strlen(path));
    fprintf(f, ",\"offset\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"request_id\":", rec->offset, rec->seq);
    ctr__audit_json_str(f, rec->request_id, rec->request_id_len);
    fprintf(f, ",\"client_request_id\":%s,\"received_ns\":%" PRIu64 ",\"scored_ns\":%" PRIu64
               ",\"model\":\"%s\",\"generation\":%" PRIu64 ",\"kernel\":\"%s\",\"bit_exact\":%s"
               ",\"n\":%zu,\"n_dense\":%zu,\"n_cat\":%zu,\"scores\":[",
            rec->client_request_id ? "true" : "false", rec->t_received_ns, rec->t_scored_ns, digest,
            rec->generation, ctr_audit_kernel_name(rec->kernel_id), rec->bit_exact ? "true" : "false",
            rec->n, rec->n_dense, rec->n_cat);
    for (size_t i = 0; i < rec->n; i++) {
        if (i)
            fputc(',', f);
        json_float(f, rec->scores[i]);
    }
    fputc(']', f);
    if (d->values) {
        fputs(",\"dense\":[", f);
        for (size_t i = 0; i < rec->n; i++) {
            fputs(i ? ",[" : "[", f);
            for (size_t j = 0; j < rec->n_dense; j++) {
                if (j)
                    fputc(',', f);
                json_double(f, ctr_audit_record_dense(rec, i, j));
            }
            fputc(']', f);
        }
        fputs("],\"cat\":[", f);
        for (size_t i = 0; i < rec->n; i++) {
            fputs(i ? ",[" : "[", f);
            for (size_t j = 0; j < rec->n_cat; j++) {
                const char *b;
                size_t l;
                if (j)
                    fputc(',', f);
                if (ctr_audit_record_cat(rec, i, j, &b, &l))
                    ctr__audit_json_str(f, b, l);
                else
                    fputs("null", f);
            }
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

static void dump_event(audit_walker_t *w, const char *path, ctr_audit_event_t ev, const ctr_audit_span_t *s)
{
    if (((dump_ctx_t *)w->ctx)->names)
        return;   /* ctr__audit_walk() reported it on stderr */
    fputs("{\"file\":", stdout);
    ctr__audit_json_str(stdout, path, strlen(path));
    printf(",\"event\":\"%s\",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"why\":",
           ev == CTR_AUDIT_CORRUPT ? "corrupt" : "torn", s->offset, s->bytes);
    ctr__audit_json_str(stdout, s->why, strlen(s->why));
    fputs("}\n", stdout);
}

typedef struct {
    int values, requests;
    const char *model;
    ctr_opt_list_t logs;
} dump_args_t;

static const ctr_opt_t dump_rows[] = {
    {"no-values", NULL, CTR_OPT_BOOL, CTR_OPT_NEGATE, CTR_OPT_AT(dump_args_t, values), .help = "records without their raw values"},
    {"requests", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(dump_args_t, requests), .help = "each record as the /v1/score body that reproduces it (needs --model)"},
    {"model", NULL, CTR_OPT_STR, 0, CTR_OPT_AT(dump_args_t, model), .metavar = "M", .help = "with --requests: the feature names"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(dump_args_t, logs), .metavar = "LOG...", .help = "segment files or directories of them"},
};

static const ctr_opts_t dump_spec = {
    dump_rows, CTR_ARRAY_LEN(dump_rows),
    "usage: ctrtool audit dump [--no-values] LOG...\n"
    "       ctrtool audit dump --requests --model M LOG...\n"
    "Prints each segment header, record, corrupt span and torn tail as one JSON\n"
    "object per line. Records hold: file, offset, seq, request_id, received_ns,\n"
    "scored_ns, model (digest), generation, kernel, bit_exact, n, n_dense, n_cat,\n"
    "scores, and unless --no-values the raw values: dense[i][j] (null = missing)\n"
    "and cat[i][j] (the value's bytes; null = missing). A LOG is a segment file\n"
    "or a directory of them. --requests prints each record instead as the\n"
    "/v1/score body that reproduces it, with feature names from model M and the\n"
    "arrival time as \"t_ns\" (for ctrload --replay); anomalies go to stderr.\n"
    "Exit 1 when a file is unreadable or holds corrupt records.\n\n",
    NULL,
};

int ctr__cmd_audit_dump(int argc, char **argv)
{
    dump_args_t a = {.values = 1};
    audit_files_t files = {0};
    ctr_opts_result_t res;
    if (ctr__audit_logs_init(&a.logs, argc)) {
        fprintf(stderr, "ctrtool audit dump: out of memory\n");
        return 1;
    }
    int rc = ctr__tool_args("audit dump", &dump_spec, &a, sizeof a, argc, argv, &res);
    if (rc >= 0) {
        free(a.logs.v);
        return rc;
    }
    dump_ctx_t d = {a.values, NULL};
    const char *mpath = a.model;
    int requests = a.requests;
    rc = ctr__audit_expand_all("dump", &a.logs, &files);
    free(a.logs.v);
    if (requests != (mpath != NULL)) {
        fprintf(stderr, "ctrtool audit dump: --requests and --model go together\n");
        ctr__audit_files_free(&files);
        return 2;
    }
    if (!files.n && !rc) {
        fprintf(stderr, "ctrtool audit dump: no audit segment (*.audit) in the LOG arguments\n");
        ctr__audit_files_free(&files);
        return 2;
    }
    audit_model_t names;
    if (mpath) {
        if (ctr__audit_model_load("dump", mpath, &names)) {
            ctr__audit_files_free(&files);
            return 1;
        }
        d.names = names.def;
    }
    audit_walker_t w = {"dump", requests, dump_segment, dump_record, dump_event, &d, {0}};
    ctr__audit_walk(&w, &files);
    ctr__audit_files_free(&files);
    if (mpath)
        ctr__audit_model_unload(&names);
    fflush(stdout);
    return rc || w.t.unreadable || (w.t.corrupt) ? 1 : 0;
}
