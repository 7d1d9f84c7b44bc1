/* ctrtool audit dump / verify / pd - read ctrd's audit log. This file:
 * the walk over the segments that every subcommand shares (audit_int.h),
 * verify and pd; dump is cmd_audit_dump.c.
 *
 *   dump   LOG...                     every record as one JSON object a line
 *   dump   --requests --model [NAME=]M ... LOG...
 *                                     each record as its /v1/score body
 *   verify --model M [--model M2] LOG...
 *                                     re-score each record whose digest is a
 *                                     given model's and compare score bits
 *   pd     --model CANDIDATE [--digest D | --primary M] LOG...
 *                                     relative PD and flip rate of a
 *                                     candidate against the logged scores
 *
 * A LOG is a segment file or a directory (its *.audit files, by name).
 * A log of a ctrd serving several models holds each record's model digest,
 * not the name it was served under: every subcommand that needs a model
 * matches records to the given files by digest (up to 16, as many as ctrd
 * serves).
 * Re-scoring re-encodes the logged raw values with features.h exactly as
 * the server did and runs ctr_forward: the bit-exact kernels give the same
 * bits whatever the batch, so every logged score must come back
 * identical. Exit status: 0 ok; 1 a mismatch, corruption in the middle of
 * a file, an unreadable file, or (verify) no record scored by the model;
 * 2 usage. A torn final record (a crash mid-write) is reported, skipped
 * and not an error. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/json_text.h"
#include "ctr/kernels.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "audit_int.h"
#include "ctrtool_int.h"

/* ---- the list of segment files --------------------------------------- */

static int list_add(audit_files_t *l, const char *s)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, c * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = c;
    }
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

void ctr__audit_files_free(audit_files_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands a directory argument into its *.audit files, sorted by name
 * (segment names sort in time order). */
static int expand(const char *cmd, const char *arg, audit_files_t *out)
{
    struct stat st;
    if (stat(arg, &st)) {
        fprintf(stderr, "ctrtool audit %s: %s: %s\n", cmd, arg, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return list_add(out, arg);
    DIR *d = opendir(arg);
    if (!d) {
        fprintf(stderr, "ctrtool audit %s: %s: %s\n", cmd, arg, strerror(errno));
        return -1;
    }
    audit_files_t found = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 6 && !strcmp(e->d_name + l - 6, ".audit")) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", arg, e->d_name);
            if (list_add(&found, path)) {
                closedir(d);
                ctr__audit_files_free(&found);
                return -1;
            }
        }
    }
    closedir(d);
    if (found.n)
        qsort(found.v, found.n, sizeof *found.v, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < found.n && !rc; i++)
        rc = list_add(out, found.v[i]);
    ctr__audit_files_free(&found);
    return rc;
}

/* ---- walking the log --------------------------------------------------- */



void ctr__audit_walk(audit_walker_t *w, const audit_files_t *files)
{
    for (size_t f = 0; f < files->n; f++) {
        const char *path = files->v[f];
        ctr_audit_reader_t *r;
        char err[512];
        int rc = ctr_audit_reader_open(path, &r, err, sizeof err);
        if (rc) {
            fprintf(stderr, "ctrtool audit %s: %s: %s\n", w->cmd, path, err);
            w->t.unreadable++;
            continue;
        }
        w->t.files++;
        if (ctr_audit_reader_header_status(r)) {
            w->t.corrupt++;
            w->t.header_bad++;
            fprintf(stderr, "ctrtool audit %s: %s: segment header CRC mismatch (records still read)\n",
                    w->cmd, path);
        }
        if (w->on_segment)
            w->on_segment(w, path, r);
        ctr_audit_record_t rec;
        ctr_audit_span_t span;
        ctr_audit_event_t ev;
        while ((ev = ctr_audit_reader_next(r, &rec, &span)) != CTR_AUDIT_END) {
            if (ev == CTR_AUDIT_RECORD) {
                w->t.records++;
                w->t.examples += rec.n;
                if (w->on_record)
                    w->on_record(w, path, &rec);
                continue;
            }
            if (ev == CTR_AUDIT_CORRUPT)
                w->t.corrupt++;
            else
                w->t.torn++;
            if (w->verbose_events)
                fprintf(stderr, "ctrtool audit %s: %s: %s at offset %" PRIu64 " (%" PRIu64 " bytes): %s\n",
                        w->cmd, path, ev == CTR_AUDIT_CORRUPT ? "corrupt" : "torn tail", span.offset,
                        span.bytes, span.why);
            if (w->on_event)
                w->on_event(w, path, ev, &span);
        }
        ctr_audit_reader_close(r);
    }
}

/* ---- JSON output ------------------------------------------------------- */

/* A JSON string: valid UTF-8 as it is, otherwise every byte >= 0x80 as
 * \u00XX so a reader gets the bytes back (ctr_json_escape's
 * CTR_JSON_INVALID_BYTES). */
void ctr__audit_json_str(FILE *f, const char *s, size_t n)
{
    char buf[1024], *out = buf;
    size_t len = ctr_json_escape(buf, sizeof buf, s, n, CTR_JSON_INVALID_BYTES, NULL);
    if (len > sizeof buf) {
        if (!(out = malloc(len))) {
            fprintf(stderr, "ctrtool audit: out of memory\n");
            exit(1);
        }
        ctr_json_escape(out, len, s, n, CTR_JSON_INVALID_BYTES, NULL);
    }
    fwrite(out, 1, len, f);
    if (out != buf)
        free(out);
}

/* ---- models -------------------------------------------------------------- */

int ctr__audit_model_load(const char *cmd, const char *path, audit_model_t *s)
{
    char err[1024];
    memset(s, 0, sizeof *s);
    s->path = path;
    int rc = ctr_model_open(path, &s->m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "ctrtool audit %s: %s: %s\n", cmd, path, err);
        return -1;
    }
    s->def = ctr_model_def(s->m);
    if (ctr_audit_digest_parse(ctr_model_digest(s->m), s->digest) ||
        ctr_scratch_new(s->def, 256, &s->scratch, NULL, 0)) {
        fprintf(stderr, "ctrtool audit %s: %s: cannot prepare the model\n", cmd, path);
        return -1;
    }
    return 0;
}

void ctr__audit_model_unload(audit_model_t *s)
{
    ctr_scratch_free(s->scratch);
    ctr_model_close(s->m);
}

/* The LOG... arguments of every subcommand: as many as given. */
int ctr__audit_logs_init(ctr_opt_list_t *l, int argc)
{
    l->v = calloc((size_t)argc + 1, sizeof *l->v);
    l->n = 0;
    l->cap = (size_t)argc;
    return l->v ? 0 : -1;
}

/* Each LOG argument, a directory expanded to its segments. 0, or 1 when
 * one could not be read (reported). */
int ctr__audit_expand_all(const char *cmd, const ctr_opt_list_t *logs, audit_files_t *files)
{
    int rc = 0;
    for (size_t i = 0; i < logs->n; i++)
        if (expand(cmd, logs->v[i], files))
            rc = 1;
    return rc;
}

/* ---- re-scoring --------------------------------------------------------- */

typedef struct {
    const ctr_kernel_t *kernel;
    float *dense;
    uint32_t *rows;
    float *scores;
    size_t cap;                   /* examples the buffers hold */
} rescore_t;

/* The row of logged column k, feature c's slot: its value through the
 * mapping, else row 0 (single-valued, missing) or an empty bag slot, as
 * the server encoded it (features.h). CTR_EFORMAT for a value the mapping
 * refuses (the server never logs one). */
static int column_row(const ctr_cat_def_t *c, const ctr_audit_record_t *rec, size_t i, size_t k,
                      uint32_t *row)
{
    const char *b;
    size_t l;
    if (!ctr_audit_record_cat(rec, i, k, &b, &l)) {
        *row = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
        return 0;
    }
    return ctr_features_map(c, b, l, row) ? CTR_EFORMAT : 0;
}

/* Scores rec's logged inputs with def into rs->scores. A record has one
 * categorical column per row slot (docs/AUDIT_LOG.md). 0, or CTR_E*. */
static int rescore(rescore_t *rs, const ctr_model_def_t *def, ctr_scratch_t *scratch,
                   const ctr_audit_record_t *rec)
{
    size_t n = rec->n, nd = def->n_dense, nc = ctr_model_slots(def);
    if (rec->n_dense != nd || rec->n_cat != nc)
        return CTR_EFORMAT;
    if (n > rs->cap) {
        size_t cap = n;
        float *d = realloc(rs->dense, (cap * nd + 1) * sizeof *d);
        if (d)
            rs->dense = d;
        uint32_t *r = realloc(rs->rows, (cap * nc + 1) * sizeof *r);
        if (r)
            rs->rows = r;
        float *s = realloc(rs->scores, cap * sizeof *s);
        if (s)
            rs->scores = s;
        if (!d || !r || !s)
            return CTR_ENOMEM;
        rs->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nd; j++) {
            double v = ctr_audit_record_dense(rec, i, j);
            rs->dense[i * nd + j] = isnan(v) ? ctr_features_dense_missing(&def->dense[j])
                                             : ctr_features_dense(&def->dense[j], v);
        }
        for (size_t j = 0, k = 0; j < def->n_cat; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            for (size_t t = 0; t < ctr_features_width(c); t++, k++)
                if (column_row(c, rec, i, k, &rs->rows[i * nc + k]))
                    return CTR_EFORMAT;
        }
    }
    return ctr_forward(def, rs->kernel, n, rs->dense, rs->rows, rs->scores, NULL, scratch);
}

static void rescore_free(rescore_t *rs)
{
    free(rs->dense);
    free(rs->rows);
    free(rs->scores);
}

/* ---- verify ------------------------------------------------------------- */

typedef struct {
    audit_model_t models[CTR__AUDIT_MODELS_MAX];
    size_t n_models;
    rescore_t rs;
    uint64_t verified, verified_examples, mismatched, mismatched_examples, skipped, errors;
    uint64_t inexact, inexact_differ;
    uint64_t shown;
} verify_ctx_t;

static void verify_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    verify_ctx_t *v = w->ctx;
    audit_model_t *s = NULL;
    for (size_t i = 0; i < v->n_models && !s; i++)
        if (!memcmp(v->models[i].digest, rec->digest, 32))
            s = &v->models[i];
    if (!s) {
        v->skipped++;
        return;
    }
    int rc = rescore(&v->rs, s->def, s->scratch, rec);
    if (rc) {
        v->mismatched++;
        v->mismatched_examples += rec->n;
        if (v->shown++ < 20)
            fprintf(stderr, "%s@%" PRIu64 " request %s: cannot re-score: %s (record has %zu dense, %zu "
                            "categorical)\n", path, rec->offset, rec->request_id, ctr_strerror(rc),
                    rec->n_dense, rec->n_cat);
        return;
    }
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < rec->n; i++)
        if (memcmp(&v->rs.scores[i], &rec->scores[i], 4) && !differ++)
            first = i;
    s->records++;
    s->examples += rec->n;
    if (!rec->bit_exact) {
        /* Scored by a kernel that does not promise bit-exact results
         * (--kernel blas): differences are expected, not failures. */
        v->inexact++;
        v->inexact_differ += differ > 0;
        return;
    }
    if (!differ) {
        v->verified++;
        v->verified_examples += rec->n;
        return;
    }
    v->mismatched++;
    v->mismatched_examples += differ;
    if (v->shown++ < 20) {
        uint32_t a, b;
        memcpy(&a, &rec->scores[first], 4);
        memcpy(&b, &v->rs.scores[first], 4);
        fprintf(stderr, "MISMATCH %s@%" PRIu64 " request %s example %zu of %zu: logged %.9g (0x%08x), "
                        "recomputed %.9g (0x%08x) [kernel %s]; %zu examples differ\n",
                path, rec->offset, rec->request_id, first, rec->n, (double)rec->scores[first], a,
                (double)v->rs.scores[first], b, ctr_audit_kernel_name(rec->kernel_id), differ);
    }
}

typedef struct {
    const char *model_v[CTR__AUDIT_MODELS_MAX];
    ctr_opt_list_t models;
    ctr_kernel_id_t kernel;
    ctr_opt_list_t logs;
} verify_args_t;

static const ctr_opt_t verify_rows[] = {
    {"model", NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(verify_args_t, models), .metavar = "M", .help = "a model whose records are re-scored; up to 16 (as many as one ctrd serves)"},
    {"kernel", NULL, CTR_OPT_ENUM, 0, CTR_OPT_AT(verify_args_t, kernel), .def = "auto", .enums = ctr_kernel_choices, .metavar = "K", .help = "auto|scalar|avx2|avx512|blas"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(verify_args_t, logs), .metavar = "LOG...", .help = "segment files or directories of them"},
};

static const ctr_opts_t verify_spec = {
    verify_rows, CTR_ARRAY_LEN(verify_rows),
    "usage: ctrtool audit verify --model M [--model M2 ...] [--kernel K] LOG...\n"
    "Re-scores every record whose model digest is one of the given models' with\n"
    "the same feature encoding and a bit-exact kernel (auto: the widest this CPU\n"
    "runs), and compares each score's float bits with the logged ones. Prints\n"
    "totals: verified, mismatched, skipped (another model), corrupt, torn tail.\n"
    "Exit 1 on any mismatch, corruption in the middle of a file, an unreadable\n"
    "file, or when no record was scored by the given models.\n\n",
    NULL,
};

static int cmd_verify(int argc, char **argv)
{
    verify_ctx_t v;
    memset(&v, 0, sizeof v);
    audit_files_t files = {0};
    verify_args_t a;
    memset(&a, 0, sizeof a);
    a.models = (ctr_opt_list_t){a.model_v, 0, CTR__AUDIT_MODELS_MAX};
    ctr_opts_result_t res;
    if (ctr__audit_logs_init(&a.logs, argc)) {
        fprintf(stderr, "ctrtool audit verify: out of memory\n");
        return 1;
    }
    int rc = ctr__tool_args("audit verify", &verify_spec, &a, sizeof a, argc, argv, &res);
    if (rc >= 0) {
        free(a.logs.v);
        return rc;
    }
    const char *const *model_paths = a.models.v;
    size_t n_paths = a.models.n;
    rc = ctr__audit_expand_all("verify", &a.logs, &files);
    free(a.logs.v);
    if (!files.n && !rc) {
        fprintf(stderr, "ctrtool audit verify: no audit segment (*.audit) in the LOG arguments\n");
        return 2;
    }
    v.rs.kernel = ctr__tool_kernel("audit verify", a.kernel);
    if (!v.rs.kernel) {
        ctr__audit_files_free(&files);
        return 1;
    }
    for (size_t i = 0; i < n_paths; i++) {
        if (ctr__audit_model_load("verify", model_paths[i], &v.models[v.n_models])) {
            rc = 1;
            goto out;
        }
        v.n_models++;
    }
    audit_walker_t w = {"verify", 1, NULL, verify_record, NULL, &v, {0}};
    ctr__audit_walk(&w, &files);
    audit_totals_t *t = &w.t;
    printf("audit verify: %" PRIu64 " files, %" PRIu64 " records (%" PRIu64 " examples), kernel %s\n",
           t->files, t->records, t->examples, v.rs.kernel->name);
    for (size_t i = 0; i < v.n_models; i++) {
        char d[72];
        ctr_audit_digest_str(v.models[i].digest, d);
        printf("  model %s (%s): %" PRIu64 " records, %" PRIu64 " examples\n", v.models[i].path, d,
               v.models[i].records, v.models[i].examples);
    }
    printf("  verified    %" PRIu64 " records (%" PRIu64 " examples): every score bit-identical\n",
           v.verified, v.verified_examples);
    printf("  mismatched  %" PRIu64 " records (%" PRIu64 " examples)\n", v.mismatched, v.mismatched_examples);
    printf("  skipped     %" PRIu64 " records (another model's digest)\n", v.skipped);
    if (v.inexact)
        printf("  not bit-exact kernel (blas): %" PRIu64 " records re-scored, %" PRIu64
               " differ (expected, not counted as mismatches)\n", v.inexact, v.inexact_differ);
    printf("  corrupt     %" PRIu64 "%s\n", t->corrupt, t->corrupt ? " (damaged bytes in the middle of a file)" : "");
    printf("  torn tail   %" PRIu64 "%s\n", t->torn, t->torn ? " (incomplete final record of a crash: skipped)" : "");
    if (t->unreadable)
        printf("  unreadable  %" PRIu64 " files\n", t->unreadable);
    printf("verified=%" PRIu64 " mismatched=%" PRIu64 " skipped=%" PRIu64 " corrupt=%" PRIu64 " torn=%" PRIu64 "\n",
           v.verified, v.mismatched, v.skipped, t->corrupt, t->torn);
    if (v.mismatched || t->corrupt || t->unreadable)
        rc = 1;
    if (!v.verified && !v.inexact && v.skipped) {
        fprintf(stderr, "ctrtool audit verify: no record was scored by the given model(s)\n");
        rc = 1;
    }
out:
    for (size_t i = 0; i < v.n_models; i++)
        ctr__audit_model_unload(&v.models[i]);
    rescore_free(&v.rs);
    ctr__audit_files_free(&files);
    return rc;
}

/* ---- pd ----------------------------------------------------------------- */

typedef struct {
    audit_model_t cand;
    rescore_t rs;
    float *logged, *scored;
    size_t n, cap;
    uint64_t records, skipped, identical, errors;
    /* --digest / --primary: only records of these digests are compared,
     * so that a log of several models compares one served model's traffic
     * (a log's records are told apart by digest, not by name). */
    uint8_t only[2 * CTR__AUDIT_MODELS_MAX][32];   /* --digest, then --primary */
    size_t n_only;
    uint64_t skipped_model, skipped_model_examples;
    int oom;
} pd_ctx_t;

static void pd_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    pd_ctx_t *p = w->ctx;
    if (p->n_only) {
        size_t i = 0;
        while (i < p->n_only && memcmp(p->only[i], rec->digest, 32))
            i++;
        if (i == p->n_only) {
            p->skipped_model++;
            p->skipped_model_examples += rec->n;
            return;
        }
    }
    if (rec->n_dense != p->cand.def->n_dense || rec->n_cat != ctr_model_slots(p->cand.def)) {
        p->skipped++;
        return;
    }
    int rc = rescore(&p->rs, p->cand.def, p->cand.scratch, rec);
    if (rc) {
        if (p->errors++ < 10)
            fprintf(stderr, "ctrtool audit pd: %s@%" PRIu64 ": %s\n", path, rec->offset, ctr_strerror(rc));
        return;
    }
    if (p->n + rec->n > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->n + rec->n)
            cap *= 2;
        float *a = realloc(p->logged, cap * sizeof *a);
        if (a)
            p->logged = a;
        float *b = realloc(p->scored, cap * sizeof *b);
        if (b)
            p->scored = b;
        if (!a || !b) {
            p->oom = 1;
            return;
        }
        p->cap = cap;
    }
    for (size_t i = 0; i < rec->n; i++) {
        p->logged[p->n] = rec->scores[i];
        p->scored[p->n] = p->rs.scores[i];
        p->identical += !memcmp(&rec->scores[i], &p->rs.scores[i], 4);
        p->n++;
    }
    p->records++;
}

typedef struct {
    const char *model_v[1];
    ctr_opt_list_t model;
    const char *digest_v[CTR__AUDIT_MODELS_MAX];
    ctr_opt_list_t digests;
    const char *primary_v[CTR__AUDIT_MODELS_MAX];
    ctr_opt_list_t primaries;
    ctr_kernel_id_t kernel;
    int json;
    ctr_opt_list_t logs;
} pd_args_t;

static const ctr_opt_t pd_rows[] = {
    {"model", NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(pd_args_t, model), .metavar = "CANDIDATE", .help = "the model to compare with the logged scores"},
    {"digest", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(pd_args_t, digests), .metavar = "D", .help = "compare only records of model digest D (sha256:HEX, as audit dump\nprints it); repeatable"},
    {"primary", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(pd_args_t, primaries), .metavar = "M", .help = "compare only records scored by model file M (its digest);\nrepeatable, e.g. once per generation"},
    {"kernel", NULL, CTR_OPT_ENUM, 0, CTR_OPT_AT(pd_args_t, kernel), .def = "auto", .enums = ctr_kernel_choices, .metavar = "K", .help = "auto|scalar|avx2|avx512|blas"},
    {"json", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(pd_args_t, json), .help = "one JSON object instead of the table"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(pd_args_t, logs), .metavar = "LOG...", .help = "segment files or directories of them"},
};

static const ctr_opts_t pd_spec = {
    pd_rows, CTR_ARRAY_LEN(pd_rows),
    "usage: ctrtool audit pd --model CANDIDATE [--digest D | --primary M ...] [--kernel K] [--json] LOG...\n"
    "Scores every logged request (any model digest, same feature schema) with the\n"
    "candidate and compares with the scores the server returned: relative PD\n"
    "(1/N) sum 2|a-b|/(a+b) (terms with both below 1e-7 count 0), the fraction\n"
    "of examples whose side of 0.5 flips, and the fraction of identical scores.\n"
    "A log of a ctrd serving several models mixes their traffic: --digest D and\n"
    "--primary M (as many as wanted, up to 16 each) compare only the records\n"
    "those models scored; the others are counted as skipped (another model).\n"
    "Exit 1 when a filter matches no record.\n\n",
    NULL,
};

/* ,"key":v with NaN (nothing compared) as null: JSON has no NaN. */
static void json_ratio(const char *key, double v)
{
    if (isnan(v))
        printf(",\"%s\":null", key);
    else
        printf(",\"%s\":%.9g", key, v);
}

static int cmd_pd(int argc, char **argv)
{
    pd_ctx_t p;
    memset(&p, 0, sizeof p);
    audit_files_t files = {0};
    pd_args_t a;
    memset(&a, 0, sizeof a);
    a.model = (ctr_opt_list_t){a.model_v, 0, 1};
    a.digests = (ctr_opt_list_t){a.digest_v, 0, CTR__AUDIT_MODELS_MAX};
    a.primaries = (ctr_opt_list_t){a.primary_v, 0, CTR__AUDIT_MODELS_MAX};
    ctr_opts_result_t res;
    if (ctr__audit_logs_init(&a.logs, argc)) {
        fprintf(stderr, "ctrtool audit pd: out of memory\n");
        return 1;
    }
    int rc = ctr__tool_args("audit pd", &pd_spec, &a, sizeof a, argc, argv, &res);
    if (rc >= 0) {
        free(a.logs.v);
        return rc;
    }
    const char *mpath = a.model.v[0];
    int json = a.json;
    for (size_t i = 0; i < a.digests.n; i++)
        if (ctr_audit_digest_parse(a.digests.v[i], p.only[p.n_only++])) {
            fprintf(stderr, "ctrtool audit pd: --digest \"%s\": expected sha256:<64 hex digits> (the \"model\" "
                            "of ctrtool audit dump, the \"digest\" of GET /v1/models)\n", a.digests.v[i]);
            free(a.logs.v);
            return 2;
        }
    /* A primary model is opened for its digest only; it is also checked,
     * so a damaged file is not taken for the served one. */
    for (size_t i = 0; i < a.primaries.n; i++) {
        audit_model_t pm;
        if (ctr__audit_model_load("pd", a.primaries.v[i], &pm)) {
            ctr__audit_model_unload(&pm);
            free(a.logs.v);
            return 1;
        }
        memcpy(p.only[p.n_only++], pm.digest, 32);
        ctr__audit_model_unload(&pm);
    }
    rc = ctr__audit_expand_all("pd", &a.logs, &files);
    free(a.logs.v);
    if (!files.n && !rc) {
        fprintf(stderr, "ctrtool audit pd: no audit segment (*.audit) in the LOG arguments\n");
        return 2;
    }
    p.rs.kernel = ctr__tool_kernel("audit pd", a.kernel);
    if (!p.rs.kernel || ctr__audit_model_load("pd", mpath, &p.cand)) {
        ctr__audit_files_free(&files);
        if (p.cand.m)
            ctr__audit_model_unload(&p.cand);
        return 1;
    }
    audit_walker_t w = {"pd", 1, NULL, pd_record, NULL, &p, {0}};
    ctr__audit_walk(&w, &files);
    double pd = p.n ? ctr_metrics_pd(p.logged, p.scored, p.n) : NAN;
    double flip = p.n ? ctr_metrics_flip_rate(p.logged, p.scored, p.n) : NAN;
    double same = p.n ? (double)p.identical / (double)p.n : NAN;
    char d[72];
    ctr_audit_digest_str(p.cand.digest, d);
    if (json) {
        printf("{\"candidate\":");
        ctr__audit_json_str(stdout, mpath, strlen(mpath));
        printf(",\"digest\":\"%s\",\"records\":%" PRIu64 ",\"examples\":%zu,\"skipped\":%" PRIu64
               ",\"skipped_model\":%" PRIu64 ",\"skipped_model_examples\":%" PRIu64 ",\"only\":[",
               d, p.records, p.n, p.skipped, p.skipped_model, p.skipped_model_examples);
        for (size_t i = 0; i < p.n_only; i++) {
            char od[72];
            ctr_audit_digest_str(p.only[i], od);
            printf("%s\"%s\"", i ? "," : "", od);
        }
        printf("],\"corrupt\":%" PRIu64 ",\"torn\":%" PRIu64, w.t.corrupt, w.t.torn);
        json_ratio("pd", pd);
        json_ratio("flip_rate", flip);
        json_ratio("identical", same);
        printf("}\n");
    } else {
        printf("audit pd: candidate %s (%s), kernel %s\n", mpath, d, p.rs.kernel->name);
        printf("  compared    %" PRIu64 " records, %zu examples (skipped %" PRIu64 " with another schema)\n",
               p.records, p.n, p.skipped);
        if (p.n_only)
            printf("  skipped     %" PRIu64 " records, %" PRIu64 " examples of another model (digest not "
                   "given by --digest/--primary)\n", p.skipped_model, p.skipped_model_examples);
        printf("  relative PD %.6g\n  flip rate   %.6g\n  identical   %.6g (fraction of scores with the same bits)\n",
               pd, flip, same);
        printf("  corrupt     %" PRIu64 "\n  torn tail   %" PRIu64 "\n", w.t.corrupt, w.t.torn);
    }
    if (p.oom || p.errors || w.t.unreadable || w.t.corrupt || rc)
        rc = 1;
    if (p.n_only && !p.records) {
        fprintf(stderr, "ctrtool audit pd: no record of the --digest/--primary model(s) was compared "
                        "(%" PRIu64 " of other models, %" PRIu64 " of another schema)\n", p.skipped_model, p.skipped);
        rc = 1;
    }
    ctr__audit_model_unload(&p.cand);
    rescore_free(&p.rs);
    free(p.logged);
    free(p.scored);
    ctr__audit_files_free(&files);
    return rc;
}

/* ---- entry ------------------------------------------------------------- */

int ctr__cmd_audit(int argc, char **argv)
{
    static const char usage[] =
        "usage: ctrtool audit dump   [--no-values] LOG...\n"
        "       ctrtool audit dump   --requests --model [NAME=]M [--model [NAME=]M2 ...] LOG...\n"
        "       ctrtool audit verify --model M [--model M2 ...] [--kernel K] LOG...\n"
        "       ctrtool audit pd     --model CANDIDATE [--digest D | --primary M ...] [--kernel K] [--json] LOG...\n"
        "A LOG is an audit segment file or a directory of them (docs/AUDIT_LOG.md).\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "dump"))
        return ctr__cmd_audit_dump(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pd"))
        return cmd_pd(argc - 1, argv + 1);
    fprintf(stderr, "ctrtool audit: unknown subcommand '%s'\n%s", argv[1], usage);
    return 2;
}
