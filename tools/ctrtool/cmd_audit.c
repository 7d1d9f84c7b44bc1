/* ctrtool audit dump / verify / pd - read ctrd's audit log. This file:
 * the walk over the segments that every subcommand shares (audit_int.h),
 * re-scoring, and verify; dump is cmd_audit_dump.c, pd cmd_audit_pd.c.
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
 *   pd     --shadow [--threshold T] [--digest D | --primary M] LOG...
 *                                     the same from the shadow records
 *                                     ctrd wrote (no model needed)
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

/* ,"key":v with NaN (nothing compared) as null: JSON has no NaN. */
void ctr__audit_json_ratio(const char *key, double v)
{
    if (isnan(v))
        printf(",\"%s\":null", key);
    else
        printf(",\"%s\":%.9g", key, v);
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

/* A record has one categorical column per row slot (docs/AUDIT_LOG.md). */
int ctr__audit_rescore(audit_rescore_t *rs, const ctr_model_def_t *def, ctr_scratch_t *scratch,
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

void ctr__audit_rescore_free(audit_rescore_t *rs)
{
    free(rs->dense);
    free(rs->rows);
    free(rs->scores);
}

/* ---- verify ------------------------------------------------------------- */

typedef struct {
    audit_model_t models[CTR__AUDIT_MODELS_MAX];
    size_t n_models;
    audit_rescore_t rs;
    uint64_t verified, verified_examples, mismatched, mismatched_examples, skipped, errors;
    uint64_t inexact, inexact_differ;
    uint64_t shown;
    /* Shadow records (type 2): verified like any record, their digest and
     * scores the candidate's; counted apart in the summary. */
    uint64_t shadow_verified, shadow_verified_examples, shadow_mismatched, shadow_skipped;
} verify_ctx_t;

static void verify_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    verify_ctx_t *v = w->ctx;
    audit_model_t *s = NULL;
    for (size_t i = 0; i < v->n_models && !s; i++)
        if (!memcmp(v->models[i].digest, rec->digest, 32))
            s = &v->models[i];
    int shadow = rec->type == 2;
    if (!s) {
        v->skipped++;
        v->shadow_skipped += shadow;
        return;
    }
    int rc = ctr__audit_rescore(&v->rs, s->def, s->scratch, rec);
    if (rc) {
        v->mismatched++;
        v->mismatched_examples += rec->n;
        v->shadow_mismatched += shadow;
        if (v->shown++ < 20)
            fprintf(stderr, "%s@%" PRIu64 " %srequest %s: cannot re-score: %s (record has %zu dense, %zu "
                            "categorical)\n", path, rec->offset, shadow ? "shadow record of " : "",
                    rec->request_id, ctr_strerror(rc), rec->n_dense, rec->n_cat);
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
        v->shadow_verified += shadow;
        v->shadow_verified_examples += shadow ? rec->n : 0;
        return;
    }
    v->mismatched++;
    v->mismatched_examples += differ;
    v->shadow_mismatched += shadow;
    if (v->shown++ < 20) {
        uint32_t a, b;
        memcpy(&a, &rec->scores[first], 4);
        memcpy(&b, &v->rs.scores[first], 4);
        fprintf(stderr, "MISMATCH %s@%" PRIu64 " %srequest %s example %zu of %zu: logged %.9g (0x%08x), "
                        "recomputed %.9g (0x%08x) [kernel %s]; %zu examples differ\n",
                path, rec->offset, shadow ? "shadow record of " : "", rec->request_id, first, rec->n,
                (double)rec->scores[first], a,
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
    "A shadow record (type 2: a request ctrd also scored with a shadow candidate)\n"
    "holds the candidate's digest and scores and is verified like any record, with\n"
    "the candidate's file; the summary counts them apart (shadow=N when any).\n"
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
    if (v.shadow_verified || v.shadow_mismatched)
        printf("  shadow      %" PRIu64 " records (%" PRIu64 " examples) of the above verified, %" PRIu64
               " mismatched: shadow records (type 2), the candidate's scores\n",
               v.shadow_verified, v.shadow_verified_examples, v.shadow_mismatched);
    if (v.shadow_skipped)
        printf("  skipped     %" PRIu64 " records (another model's digest; %" PRIu64 " of them shadow "
               "records: give the candidate's file to verify them)\n", v.skipped, v.shadow_skipped);
    else
        printf("  skipped     %" PRIu64 " records (another model's digest)\n", v.skipped);
    if (v.inexact)
        printf("  not bit-exact kernel (blas): %" PRIu64 " records re-scored, %" PRIu64
               " differ (expected, not counted as mismatches)\n", v.inexact, v.inexact_differ);
    printf("  corrupt     %" PRIu64 "%s\n", t->corrupt, t->corrupt ? " (damaged bytes in the middle of a file)" : "");
    printf("  torn tail   %" PRIu64 "%s\n", t->torn, t->torn ? " (incomplete final record of a crash: skipped)" : "");
    if (t->unreadable)
        printf("  unreadable  %" PRIu64 " files\n", t->unreadable);
    /* The key=value line as before type 2; shadow=N only when there are
     * shadow records, so a log without them prints the same line. */
    printf("verified=%" PRIu64 " mismatched=%" PRIu64 " skipped=%" PRIu64 " corrupt=%" PRIu64 " torn=%" PRIu64,
           v.verified, v.mismatched, v.skipped, t->corrupt, t->torn);
    if (v.shadow_verified || v.shadow_mismatched || v.shadow_skipped)
        printf(" shadow=%" PRIu64, v.shadow_verified);
    printf("\n");
    if (v.mismatched || t->corrupt || t->unreadable)
        rc = 1;
    if (!v.verified && !v.inexact && v.skipped) {
        fprintf(stderr, "ctrtool audit verify: no record was scored by the given model(s)\n");
        rc = 1;
    }
out:
    for (size_t i = 0; i < v.n_models; i++)
        ctr__audit_model_unload(&v.models[i]);
    ctr__audit_rescore_free(&v.rs);
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
        "       ctrtool audit pd     --shadow [--threshold T] [--digest D | --primary M ...] [--json] LOG...\n"
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
        return ctr__cmd_audit_pd(argc - 1, argv + 1);
    fprintf(stderr, "ctrtool audit: unknown subcommand '%s'\n%s", argv[1], usage);
    return 2;
}
