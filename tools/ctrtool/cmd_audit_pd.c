/* ctrtool audit pd - how far a candidate's scores are from the served
 * ones, from ctrd's audit log. Two sources:
 *
 *   pd --model CANDIDATE LOG...  re-scores every logged request (type-1
 *       record) with the candidate and compares with the logged scores;
 *   pd --shadow LOG...           reads the shadow records (type 2) ctrd
 *       wrote when it scored a sample of a primary's requests with a
 *       shadow candidate (ctrd --shadow C:P): each holds both models'
 *       scores, so no model is opened and nothing is re-scored. Its
 *       figures are ctrd's own /metrics series for the shadow (the same
 *       ctr_metrics_pd_one term and ctr_pd_hist_bounds buckets, ctr/metrics.h),
 *       summed in file order, so a test can compare the two.
 *
 * A type-2 record's scores are the candidate's, not the ones the client
 * got: plain pd skips them (counted), pd --shadow skips type 1. The walk
 * over the segments and re-scoring are cmd_audit.c's (audit_int.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_int.h"
#include "ctr/audit.h"
#include "ctr/common.h"
#include "ctr/metrics.h"
#include "ctr/model.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

/* Distinct (primary, candidate) digest pairs of the shadow records shown. */
#define PD_PAIRS_MAX 16

typedef struct {
    uint8_t primary[32], candidate[32];
    uint64_t records, examples;
} pd_pair_t;

typedef struct {
    audit_model_t cand;
    audit_rescore_t rs;
    float *logged, *scored;
    size_t n, cap;
    uint64_t records, skipped, identical, errors;
    /* --digest / --primary: only records of these digests are compared,
     * so that a log of several models compares one served model's traffic
     * (a log's records are told apart by digest, not by name). With
     * --shadow they select by the record's primary digest. */
    uint8_t only[2 * CTR__AUDIT_MODELS_MAX][32];   /* --digest, then --primary */
    size_t n_only;
    uint64_t skipped_model, skipped_model_examples;
    uint64_t skipped_shadow, skipped_shadow_examples;   /* plain pd: type-2 records */
    int oom;
    /* --shadow */
    double threshold;
    uint64_t flips, hist[CTR_PD_HIST_BOUNDS + 1], skipped_scored;
    double pd_sum, primary_sum, candidate_sum;
    pd_pair_t pairs[PD_PAIRS_MAX];
    size_t n_pairs;
    uint64_t pairs_more;          /* records of pairs past PD_PAIRS_MAX */
} pd_ctx_t;

static int only_match(const pd_ctx_t *p, const uint8_t digest[32])
{
    if (!p->n_only)
        return 1;
    for (size_t i = 0; i < p->n_only; i++)
        if (!memcmp(p->only[i], digest, 32))
            return 1;
    return 0;
}

static void pd_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    pd_ctx_t *p = w->ctx;
    if (rec->type == 2) {
        /* The candidate's scores, not the served ones: comparing with them
         * would measure the wrong model. */
        p->skipped_shadow++;
        p->skipped_shadow_examples += rec->n;
        return;
    }
    if (!only_match(p, rec->digest)) {
        p->skipped_model++;
        p->skipped_model_examples += rec->n;
        return;
    }
    if (rec->n_dense != p->cand.def->n_dense || rec->n_cat != ctr_model_slots(p->cand.def)) {
        p->skipped++;
        return;
    }
    int rc = ctr__audit_rescore(&p->rs, p->cand.def, p->cand.scratch, rec);
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

/* --shadow: one type-2 record's examples, in order, into the sums, the
 * histogram and the flips, as ctrd's shadow module adds them. */
static void pd_shadow_record(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec)
{
    pd_ctx_t *p = w->ctx;
    (void)path;
    if (rec->type != 2) {
        p->skipped_scored++;
        return;
    }
    if (!only_match(p, rec->primary_digest)) {
        p->skipped_model++;
        p->skipped_model_examples += rec->n;
        return;
    }
    for (size_t i = 0; i < rec->n; i++) {
        float a = rec->primary_scores[i], c = rec->scores[i];
        double pd = ctr_metrics_pd_one(a, c);
        p->pd_sum += pd;
        p->hist[ctr_pd_hist_bucket(pd)]++;
        p->primary_sum += a;
        p->candidate_sum += c;
        p->flips += ((double)a >= p->threshold) != ((double)c >= p->threshold);
    }
    p->n += rec->n;
    p->records++;
    size_t k = 0;
    while (k < p->n_pairs && (memcmp(p->pairs[k].primary, rec->primary_digest, 32) ||
                              memcmp(p->pairs[k].candidate, rec->digest, 32)))
        k++;
    if (k == p->n_pairs) {
        if (k == PD_PAIRS_MAX) {
            p->pairs_more++;
            return;
        }
        memcpy(p->pairs[k].primary, rec->primary_digest, 32);
        memcpy(p->pairs[k].candidate, rec->digest, 32);
        p->n_pairs++;
    }
    p->pairs[k].records++;
    p->pairs[k].examples += rec->n;
}

/* ,"key":v exactly (%.17g: a test compares the bits), null for NaN. */
static void json_exact(const char *key, double v)
{
    if (isnan(v) || isinf(v))
        printf(",\"%s\":null", key);
    else
        printf(",\"%s\":%.17g", key, v);
}

/* The shortest text that reads back as v: a bucket bound as written in
 * metrics.c (1e-07, 0.02), not 0.020000000000000000416. */
static void fmt_short(char *out, size_t cap, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static void pd_shadow_print(const pd_ctx_t *p, int json, const audit_totals_t *t)
{
    double n = (double)p->n;
    double pd = p->n ? p->pd_sum / n : NAN, flip = p->n ? (double)p->flips / n : NAN;
    double pm = p->n ? p->primary_sum / n : NAN, cm = p->n ? p->candidate_sum / n : NAN;
    char b[40];
    if (json) {
        printf("{\"shadow\":true,\"threshold\":%.17g,\"records\":%" PRIu64 ",\"examples\":%zu", p->threshold,
               p->records, p->n);
        json_exact("pd_sum", p->pd_sum);
        json_exact("pd", pd);
        printf(",\"flips\":%" PRIu64, p->flips);
        json_exact("flip_rate", flip);
        json_exact("primary_mean", pm);
        json_exact("candidate_mean", cm);
        json_exact("primary_sum", p->primary_sum);
        json_exact("candidate_sum", p->candidate_sum);
        printf(",\"buckets\":[");
        uint64_t cum = 0;
        for (size_t k = 0; k < CTR_PD_HIST_BOUNDS; k++) {
            cum += p->hist[k];
            fmt_short(b, sizeof b, ctr_pd_hist_bounds[k]);
            printf("%s{\"le\":%s,\"count\":%" PRIu64 "}", k ? "," : "", b, cum);
        }
        printf(",{\"le\":\"+Inf\",\"count\":%" PRIu64 "}],\"pairs\":[", cum + p->hist[CTR_PD_HIST_BOUNDS]);
        for (size_t k = 0; k < p->n_pairs; k++) {
            char dp[72], dc[72];
            ctr_audit_digest_str(p->pairs[k].primary, dp);
            ctr_audit_digest_str(p->pairs[k].candidate, dc);
            printf("%s{\"primary\":\"%s\",\"candidate\":\"%s\",\"records\":%" PRIu64 ",\"examples\":%" PRIu64 "}",
                   k ? "," : "", dp, dc, p->pairs[k].records, p->pairs[k].examples);
        }
        printf("],\"pairs_more_records\":%" PRIu64 ",\"skipped_scored\":%" PRIu64 ",\"skipped_model\":%" PRIu64
               ",\"skipped_model_examples\":%" PRIu64 ",\"only\":[", p->pairs_more, p->skipped_scored,
               p->skipped_model, p->skipped_model_examples);
        for (size_t i = 0; i < p->n_only; i++) {
            char od[72];
            ctr_audit_digest_str(p->only[i], od);
            printf("%s\"%s\"", i ? "," : "", od);
        }
        printf("],\"corrupt\":%" PRIu64 ",\"torn\":%" PRIu64 "}\n", t->corrupt, t->torn);
        return;
    }
    printf("audit pd --shadow: %" PRIu64 " shadow records, %zu examples (primary's logged scores against the "
           "candidate's)\n", p->records, p->n);
    for (size_t k = 0; k < p->n_pairs; k++) {
        char dp[72], dc[72];
        ctr_audit_digest_str(p->pairs[k].primary, dp);
        ctr_audit_digest_str(p->pairs[k].candidate, dc);
        printf("  primary     %s\n  candidate   %s: %" PRIu64 " records, %" PRIu64 " examples\n", dp, dc,
               p->pairs[k].records, p->pairs[k].examples);
    }
    if (p->pairs_more)
        printf("  and %" PRIu64 " records of other pairs\n", p->pairs_more);
    printf("  relative PD %.6g (sum %.17g)\n", pd, p->pd_sum);
    printf("  flips       %" PRIu64 " (rate %.6g) at threshold %g\n", p->flips, flip, p->threshold);
    printf("  mean score  primary %.6g, candidate %.6g\n", pm, cm);
    printf("  PD histogram, cumulative (ctrd_shadow_pd):\n");
    uint64_t cum = 0;
    for (size_t k = 0; k <= CTR_PD_HIST_BOUNDS; k++) {
        cum += p->hist[k];
        if (k < CTR_PD_HIST_BOUNDS)
            fmt_short(b, sizeof b, ctr_pd_hist_bounds[k]);
        printf("    le %-8s %" PRIu64 "\n", k < CTR_PD_HIST_BOUNDS ? b : "+Inf", cum);
    }
    printf("  skipped     %" PRIu64 " scored-request records (type 1: not shadow records)\n", p->skipped_scored);
    if (p->n_only)
        printf("  skipped     %" PRIu64 " shadow records, %" PRIu64 " examples of another primary (digest not "
               "given by --digest/--primary)\n", p->skipped_model, p->skipped_model_examples);
    printf("  corrupt     %" PRIu64 "\n  torn tail   %" PRIu64 "\n", t->corrupt, t->torn);
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
    int shadow;
    double threshold;
    ctr_opt_list_t logs;
} pd_args_t;

static const ctr_opt_t pd_rows[] = {
    {"model", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(pd_args_t, model), .metavar = "CANDIDATE", .help = "the model to compare with the logged scores (not with --shadow)"},
    {"shadow", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(pd_args_t, shadow), .help = "compare the two scores of each shadow record (ctrd --shadow C:P);\nno --model"},
    {"threshold", NULL, CTR_OPT_DOUBLE, CTR_OPT_MIN_EXCL, CTR_OPT_AT(pd_args_t, threshold), .def = "0.5", .dmin = 0, .dmax = 1, .metavar = "T", .help = "with --shadow: a flip is (primary >= T) != (candidate >= T); 0 < T < 1"},
    {"digest", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(pd_args_t, digests), .metavar = "D", .help = "compare only records of model digest D (sha256:HEX, as audit dump\nprints it; with --shadow the primary's); repeatable"},
    {"primary", NULL, CTR_OPT_LIST, 0, CTR_OPT_AT(pd_args_t, primaries), .metavar = "M", .help = "compare only records scored by model file M (its digest);\nrepeatable, e.g. once per generation"},
    {"kernel", NULL, CTR_OPT_ENUM, 0, CTR_OPT_AT(pd_args_t, kernel), .def = "auto", .enums = ctr_kernel_choices, .metavar = "K", .help = "auto|scalar|avx2|avx512|blas (not with --shadow)"},
    {"json", NULL, CTR_OPT_BOOL, 0, CTR_OPT_AT(pd_args_t, json), .help = "one JSON object instead of the table"},
    {NULL, NULL, CTR_OPT_LIST, CTR_OPT_REQUIRED, CTR_OPT_AT(pd_args_t, logs), .metavar = "LOG...", .help = "segment files or directories of them"},
};

static const ctr_opts_t pd_spec = {
    pd_rows, CTR_ARRAY_LEN(pd_rows),
    "usage: ctrtool audit pd --model CANDIDATE [--digest D | --primary M ...] [--kernel K] [--json] LOG...\n"
    "       ctrtool audit pd --shadow [--threshold T] [--digest D | --primary M ...] [--json] LOG...\n"
    "Scores every logged request (any model digest, same feature schema) with the\n"
    "candidate and compares with the scores the server returned: relative PD\n"
    "(1/N) sum 2|a-b|/(a+b) (terms with both below 1e-7 count 0), the fraction\n"
    "of examples whose side of 0.5 flips, and the fraction of identical scores.\n"
    "A log of a ctrd serving several models mixes their traffic: --digest D and\n"
    "--primary M (as many as wanted, up to 16 each) compare only the records\n"
    "those models scored; the others are counted as skipped (another model).\n"
    "Shadow records (type 2) hold a shadow candidate's scores, not the served\n"
    "ones: they are skipped and counted.\n"
    "--shadow reads only the shadow records that ctrd --shadow CANDIDATE:PRIMARY\n"
    "wrote, each with the primary's and the candidate's scores, and prints what\n"
    "ctrd's ctrd_shadow_* series count: examples, the sum and mean of the PD terms\n"
    "(summed in file order), flips at T, each role's mean score and the PD\n"
    "histogram (cumulative, ctrd's bucket bounds). --digest/--primary select by\n"
    "the primary's digest. --json keys: examples, pd_sum, pd, flips, flip_rate,\n"
    "primary_mean, candidate_mean, buckets [{le, count}], and more.\n"
    "Exit 1 when a filter matches no record, on corruption or an unreadable file.\n\n",
    NULL,
};

/* The checks between flags that the table cannot say. 0, or 2 after
 * saying why. */
static int pd_usage_check(const pd_args_t *a, const ctr_opts_result_t *res)
{
    const char *why = NULL;
    if (a->shadow && a->model.n)
        why = "--shadow compares the scores in the shadow records: no --model";
    else if (a->shadow && ctr_opts_from(res, "kernel") == CTR_OPT_FROM_FLAG)
        why = "--shadow re-scores nothing: no --kernel";
    else if (!a->shadow && !a->model.n)
        why = "--model CANDIDATE is required (or --shadow, to read ctrd's shadow records)";
    else if (!a->shadow && ctr_opts_from(res, "threshold") == CTR_OPT_FROM_FLAG)
        why = "--threshold goes with --shadow (plain pd flips at 0.5)";
    else if (a->threshold >= 1)
        why = "--threshold: expected 0 < T < 1";
    if (!why)
        return 0;
    fprintf(stderr, "ctrtool audit pd: %s\n%.*s\n", why, (int)strcspn(pd_spec.usage, "\n"), pd_spec.usage);
    return 2;
}

static void pd_print(const pd_ctx_t *p, const char *mpath, int json, const audit_totals_t *t)
{
    double pd = p->n ? ctr_metrics_pd(p->logged, p->scored, p->n) : NAN;
    double flip = p->n ? ctr_metrics_flip_rate(p->logged, p->scored, p->n) : NAN;
    double same = p->n ? (double)p->identical / (double)p->n : NAN;
    char d[72];
    ctr_audit_digest_str(p->cand.digest, d);
    if (json) {
        printf("{\"candidate\":");
        ctr__audit_json_str(stdout, mpath, strlen(mpath));
        printf(",\"digest\":\"%s\",\"records\":%" PRIu64 ",\"examples\":%zu,\"skipped\":%" PRIu64
               ",\"skipped_model\":%" PRIu64 ",\"skipped_model_examples\":%" PRIu64 ",\"only\":[",
               d, p->records, p->n, p->skipped, p->skipped_model, p->skipped_model_examples);
        for (size_t i = 0; i < p->n_only; i++) {
            char od[72];
            ctr_audit_digest_str(p->only[i], od);
            printf("%s\"%s\"", i ? "," : "", od);
        }
        /* skipped_shadow inside: the object still ends with the ratios,
         * as before type 2. */
        printf("],\"skipped_shadow\":%" PRIu64 ",\"corrupt\":%" PRIu64 ",\"torn\":%" PRIu64, p->skipped_shadow,
               t->corrupt, t->torn);
        ctr__audit_json_ratio("pd", pd);
        ctr__audit_json_ratio("flip_rate", flip);
        ctr__audit_json_ratio("identical", same);
        printf("}\n");
        return;
    }
    printf("audit pd: candidate %s (%s), kernel %s\n", mpath, d, p->rs.kernel->name);
    printf("  compared    %" PRIu64 " records, %zu examples (skipped %" PRIu64 " with another schema)\n",
           p->records, p->n, p->skipped);
    if (p->n_only)
        printf("  skipped     %" PRIu64 " records, %" PRIu64 " examples of another model (digest not "
               "given by --digest/--primary)\n", p->skipped_model, p->skipped_model_examples);
    if (p->skipped_shadow)
        printf("  skipped     %" PRIu64 " shadow records, %" PRIu64 " examples (type 2: a shadow candidate's "
               "scores, not the served ones; see pd --shadow)\n", p->skipped_shadow, p->skipped_shadow_examples);
    printf("  relative PD %.6g\n  flip rate   %.6g\n  identical   %.6g (fraction of scores with the same bits)\n",
           pd, flip, same);
    printf("  corrupt     %" PRIu64 "\n  torn tail   %" PRIu64 "\n", t->corrupt, t->torn);
}

int ctr__cmd_audit_pd(int argc, char **argv)
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
    if (rc < 0)
        rc = pd_usage_check(&a, &res) ? 2 : -1;
    if (rc >= 0) {
        free(a.logs.v);
        return rc;
    }
    const char *mpath = a.model.n ? a.model.v[0] : NULL;
    p.threshold = a.threshold;
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
    audit_walker_t w = {"pd", 1, NULL, a.shadow ? pd_shadow_record : pd_record, NULL, &p, {0}};
    if (a.shadow) {
        ctr__audit_walk(&w, &files);
        pd_shadow_print(&p, a.json, &w.t);
        if (!p.records && !p.n_only)
            fprintf(stderr, "ctrtool audit pd: no shadow record (type 2) in the log: ctrd writes them when "
                            "it runs with --shadow CANDIDATE:PRIMARY and --audit-dir\n");
    } else {
        p.rs.kernel = ctr__tool_kernel("audit pd", a.kernel);
        if (!p.rs.kernel || ctr__audit_model_load("pd", mpath, &p.cand)) {
            ctr__audit_files_free(&files);
            if (p.cand.m)
                ctr__audit_model_unload(&p.cand);
            return 1;
        }
        ctr__audit_walk(&w, &files);
        pd_print(&p, mpath, a.json, &w.t);
    }
    if (p.oom || p.errors || w.t.unreadable || w.t.corrupt || rc)
        rc = 1;
    if (p.n_only && !p.records) {
        fprintf(stderr, "ctrtool audit pd: no %srecord of the --digest/--primary model(s) was compared "
                        "(%" PRIu64 " of other models, %" PRIu64 " of another schema)\n",
                a.shadow ? "shadow " : "", p.skipped_model, p.skipped);
        rc = 1;
    }
    if (!a.shadow)
        ctr__audit_model_unload(&p.cand);
    ctr__audit_rescore_free(&p.rs);
    free(p.logged);
    free(p.scored);
    ctr__audit_files_free(&files);
    return rc;
}
