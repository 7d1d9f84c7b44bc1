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

/* Digests of records no --model has, kept to name them in the note. */
#define DUMP_OTHER_DIGESTS 8

typedef struct {
    int values;
    int requests;
    audit_model_t *models;        /* --requests: feature names (and served names) */
    size_t n_models;
    /* Several models, or one given as NAME=PATH: each record goes to the
     * model of its digest and its body says "model": that model's name;
     * records of another digest are skipped. Otherwise (one bare PATH) every
     * record of the model's schema is written without "model", as before
     * several models. */
    int by_digest;
    uint64_t other_records, other_examples;
    uint64_t shadow_records;      /* --requests: type-2 records left out */
    uint8_t other[DUMP_OTHER_DIGESTS][32];
    uint64_t other_count[DUMP_OTHER_DIGESTS];
    size_t n_other, other_more;   /* distinct digests kept; records of digests past them */
} dump_ctx_t;

/* --requests: the record as a /v1/score body, one line, with the arrival
 * time as "t_ns" (ctrload --replay reads this). Missing values and empty
 * bags are left out, which the server reads as missing; a bag is an array
 * of its values in slot order. */
static void dump_request(const ctr_model_def_t *def, const char *name, const ctr_audit_record_t *rec)
{
    FILE *f = stdout;
    size_t slots = ctr_model_slots(def);
    if (rec->n_dense != def->n_dense || rec->n_cat != slots) {
        fprintf(stderr, "ctrtool audit dump: record %s has %zu dense and %zu categorical columns, the "
                        "model %zu and %zu: skipped\n", rec->request_id, rec->n_dense, rec->n_cat,
                def->n_dense, slots);
        return;
    }
    fprintf(f, "{\"t_ns\":%" PRIu64 ",", rec->t_received_ns);
    if (name) {
        /* Right after t_ns, which ctrload takes out: "model" then leads the
         * body sent, where ctrd finds it without a scan (docs/API.md). */
        fputs("\"model\":", f);
        ctr__audit_json_str(f, name, strlen(name));
        fputc(',', f);
    }
    fputs("\"request_id\":", f);
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

/* --requests: rec as the body for its model (by_digest), or counted
 * among the other digests' records. */
static void dump_request_of(dump_ctx_t *d, const ctr_audit_record_t *rec)
{
    if (rec->type == 2) {
        /* A shadow record repeats a request its primary's record already
         * holds, under the candidate's digest: replaying it would send
         * the request twice, or to a model that never got it. */
        d->shadow_records++;
        return;
    }
    if (!d->by_digest) {
        dump_request(d->models[0].def, NULL, rec);
        return;
    }
    for (size_t i = 0; i < d->n_models; i++) {
        audit_model_t *s = &d->models[i];
        if (!memcmp(s->digest, rec->digest, 32)) {
            s->records++;
            s->examples += rec->n;
            dump_request(s->def, s->name, rec);
            return;
        }
    }
    d->other_records++;
    d->other_examples += rec->n;
    for (size_t i = 0; i < d->n_other; i++)
        if (!memcmp(d->other[i], rec->digest, 32)) {
            d->other_count[i]++;
            return;
        }
    if (d->n_other < DUMP_OTHER_DIGESTS) {
        memcpy(d->other[d->n_other], rec->digest, 32);
        d->other_count[d->n_other++] = 1;
    } else {
        d->other_more++;
    }
}

static void dump_segment(audit_walker_t *w, const char *path, const ctr_audit_reader_t *r)
{
    if (((dump_ctx_t *)w->ctx)->requests)
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
    if (d->requests) {
        dump_request_of(d, rec);
        return;
    }
    char digest[72];
    ctr_audit_digest_str(rec->digest, digest);
    fputs("{\"file\":", f);
    ctr__audit_json_str(f, path, strlen(path));
    fprintf(f, ",\"offset\":%" PRIu64 ",\"type\":%u,\"seq\":%" PRIu64 ",\"request_id\":", rec->offset, rec->type,
            rec->seq);
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
    if (rec->type == 2) {
        /* The record's own fields are the candidate's; these name the
         * primary's record and repeat the primary's scores. */
        ctr_audit_digest_str(rec->primary_digest, digest);
        fprintf(f, ",\"primary_seq\":%" PRIu64 ",\"primary_model\":\"%s\",\"primary_generation\":%" PRIu64
                   ",\"primary_scores\":[", rec->primary_seq, digest, rec->primary_generation);
        for (size_t i = 0; i < rec->n; i++) {
            if (i)
                fputc(',', f);
            json_float(f, rec->primary_scores[i]);
        }
        fputc(']', f);
    }
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
    if (((dump_ctx_t *)w->ctx)->requests)
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
    const char *model_v[CTR__AUDIT_MODELS_MAX];
    ctr_opt_list_t models;
    ctr_opt_list_t logs;
} dump_args_t;

static const ctr_opt_t dump_rows[] = {
    {"no-values", NULL, CTR_OPT_BOOL, CTR_OPT_NEGATE, CTR_OPT_AT(dump_args_t, values), .help = "records without their raw values"},
    {"requests", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(dump_args_t, requests), .help = "each record as the /v1/score body that reproduces it (needs --model)"},
    {"model", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(dump_args_t, models), .metavar = "[NAME=]M", .help = "with --requests: the feature names; repeat for a log of several models\n(up to 16), NAME = the name ctrd served M under"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(dump_args_t, logs), .metavar = "LOG...", .help = "segment files or directories of them"},
};

static const ctr_opts_t dump_spec = {
    dump_rows, CTR_ARRAY_LEN(dump_rows),
    "usage: ctrtool audit dump [--no-values] LOG...\n"
    "       ctrtool audit dump --requests --model [NAME=]M [--model [NAME=]M2 ...] LOG...\n"
    "Prints each segment header, record, corrupt span and torn tail as one JSON\n"
    "object per line. Records hold: file, offset, type, seq, request_id,\n"
    "received_ns, scored_ns, model (digest), generation, kernel, bit_exact, n,\n"
    "n_dense, n_cat, scores, and unless --no-values the raw values: dense[i][j]\n"
    "(null = missing) and cat[i][j] (the value's bytes; null = missing). type 1 is\n"
    "a scored request; type 2 a shadow record (ctrd --shadow): its model,\n"
    "generation, kernel and scores are the candidate's, and primary_seq,\n"
    "primary_model, primary_generation and primary_scores the primary's (its\n"
    "record's seq, 0 when that was not logged). A LOG is a segment file\n"
    "or a directory of them. --requests prints each record instead as the\n"
    "/v1/score body that reproduces it, with feature names from model M and the\n"
    "arrival time as \"t_ns\" (for ctrload --replay); anomalies go to stderr.\n"
    "With one bare --model M every record of M's schema is written, whatever its\n"
    "digest. With several, or NAME=M: each record whose digest is a given file's\n"
    "is written with \"model\": that file's NAME (or its header name, as ctrd\n"
    "names a bare path), and records of other digests are skipped, counted on\n"
    "stderr. Generations of one model: give each file with the same NAME.\n"
    "--requests leaves shadow records out (their requests are the primary's\n"
    "records'), counted on stderr.\n"
    "Exit 1 when a file is unreadable or holds corrupt records.\n\n",
    NULL,
};

/* A served name, as ctrd checks it (server/registry.c): 1 to 64 bytes
 * of printable ASCII without space, '/', '?', '#', '%', '"' or '\'. */
static int name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || strchr("/?#%\"\\", s[i]))
            return 0;
    return 1;
}

/* Loads the --model texts into d->models: "NAME=PATH" when the text has a
 * '=' with no '/' before it (ctrd's rule: "./a=b.ctrm" is a path), else
 * PATH named by its header. names[i] holds the copied NAMEs (freed by the
 * caller). Returns 0, 1 (a file that does not load) or 2 (usage), said
 * on stderr. */
static int load_models(dump_ctx_t *d, const ctr_opt_list_t *texts, char **names)
{
    int named = 0;
    for (size_t i = 0; i < texts->n; i++) {
        const char *text = texts->v[i], *eq = strchr(text, '='), *path = text;
        if (eq && !memchr(text, '/', (size_t)(eq - text))) {
            if (!name_ok(text, (size_t)(eq - text)) || !eq[1]) {
                fprintf(stderr, "ctrtool audit dump: --model \"%s\": expected NAME=PATH with NAME 1 to 64 "
                                "printable bytes without space, /, ?, #, %%, \" or \\ (a served name)\n", text);
                return 2;
            }
            if (!(names[i] = strndup(text, (size_t)(eq - text)))) {
                fprintf(stderr, "ctrtool audit dump: out of memory\n");
                return 1;
            }
            path = eq + 1;
            named = 1;
        }
        if (ctr__audit_model_load("dump", path, &d->models[i]))
            return 1;
        d->n_models++;
        audit_model_t *s = &d->models[i];
        s->name = names[i] ? names[i] : s->def->name;
    }
    d->by_digest = named || d->n_models > 1;
    /* The log holds a digest, not the name it was served under: two names
     * of one file cannot be told apart, so no body could say which. */
    for (size_t i = 0; d->by_digest && i < d->n_models; i++)
        for (size_t j = 0; j < i; j++)
            if (!memcmp(d->models[i].digest, d->models[j].digest, 32) &&
                strcmp(d->models[i].name, d->models[j].name)) {
                char dg[72];
                ctr_audit_digest_str(d->models[i].digest, dg);
                fprintf(stderr, "ctrtool audit dump: --model %s and --model %s are one model (%s) under two "
                                "names, \"%s\" and \"%s\": the log keeps the digest, not the name, so their "
                                "requests cannot be told apart; give one of them\n",
                        texts->v[j], texts->v[i], dg, d->models[j].name, d->models[i].name);
                return 2;
            }
    return 0;
}

/* The note on stderr after --requests with by_digest: what each model got
 * and what was skipped, with the skipped digests. */
static void dump_note(const dump_ctx_t *d)
{
    for (size_t i = 0; i < d->n_models; i++)
        fprintf(stderr, "ctrtool audit dump: model \"%s\" (%s): %" PRIu64 " requests, %" PRIu64 " examples\n",
                d->models[i].name, d->models[i].path, d->models[i].records, d->models[i].examples);
    if (!d->other_records)
        return;
    fprintf(stderr, "ctrtool audit dump: skipped %" PRIu64 " records (%" PRIu64 " examples) of %zu%s model "
                    "digest%s no --model has:", d->other_records, d->other_examples, d->n_other,
            d->other_more ? "+" : "", d->n_other + (d->other_more > 0) == 1 ? "" : "s");
    for (size_t i = 0; i < d->n_other; i++) {
        char dg[72];
        ctr_audit_digest_str(d->other[i], dg);
        fprintf(stderr, "%s %s (%" PRIu64 ")", i ? "," : "", dg, d->other_count[i]);
    }
    if (d->other_more)
        fprintf(stderr, ", and %zu records of others", d->other_more);
    fputc('\n', stderr);
}

int ctr__cmd_audit_dump(int argc, char **argv)
{
    dump_args_t a = {.values = 1};
    a.models = (ctr_opt_list_t){a.model_v, 0, CTR__AUDIT_MODELS_MAX};
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
    audit_model_t models[CTR__AUDIT_MODELS_MAX];
    memset(models, 0, sizeof models);
    char *names[CTR__AUDIT_MODELS_MAX] = {0};
    dump_ctx_t d = {.values = a.values, .requests = a.requests, .models = models};
    rc = ctr__audit_expand_all("dump", &a.logs, &files);
    free(a.logs.v);
    if (a.requests != (a.models.n > 0)) {
        fprintf(stderr, "ctrtool audit dump: --requests and --model go together\n");
        ctr__audit_files_free(&files);
        return 2;
    }
    if (!files.n && !rc) {
        fprintf(stderr, "ctrtool audit dump: no audit segment (*.audit) in the LOG arguments\n");
        ctr__audit_files_free(&files);
        return 2;
    }
    int lrc = load_models(&d, &a.models, names);
    if (!lrc) {
        audit_walker_t w = {"dump", a.requests, dump_segment, dump_record, dump_event, &d, {0}};
        ctr__audit_walk(&w, &files);
        fflush(stdout);
        if (d.by_digest)
            dump_note(&d);
        if (d.shadow_records)
            fprintf(stderr, "ctrtool audit dump: left out %" PRIu64 " shadow records (type 2: the same requests "
                            "as their primary's records)\n", d.shadow_records);
        rc = rc || w.t.unreadable || w.t.corrupt ? 1 : 0;
    } else {
        rc = lrc;
    }
    /* Every slot: zeroed, loaded, or half filled by a load that failed. */
    for (size_t i = 0; i < a.models.n; i++)
        ctr__audit_model_unload(&models[i]);
    for (size_t i = 0; i < a.models.n; i++)
        free(names[i]);
    ctr__audit_files_free(&files);
    return rc;
}
