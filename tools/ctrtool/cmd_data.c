/* cmd_data.c - ctrtool gen-data: synthetic Criteo-shaped rows drawn from a
 * hidden model (ctr_gendata_write), written to a temporary file renamed
 * into place, so a reader never sees half a file. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

typedef struct {
    ctr_gendata_opts_t o;
    const char *out;
    int json;
} gen_args_t;

#define AT(m) CTR_OPT_AT(gen_args_t, m)

static const ctr_opt_t gen_rows[] = {
    {"rows", NULL, CTR_OPT_UINT, CTR_OPT_REQUIRED, AT(o.rows), .min = 0, .max = UINT64_C(1) << 40, .metavar = "N", .help = "rows to write"},
    {"out", NULL, CTR_OPT_STR, CTR_OPT_REQUIRED, AT(out), .metavar = "FILE|-", .help = "where the rows go (- = stdout)"},
    {"seed", NULL, CTR_OPT_UINT, 0, AT(o.seed), .metavar = "S", .help = "picks the rows"},
    {"model-seed", NULL, CTR_OPT_UINT, 0, AT(o.model_seed), .metavar = "M", .help = "picks the hidden model"},
    {"bag-features", NULL, CTR_OPT_UINT, 0, AT(o.bag_features), .min = 0, .max = 64, .metavar = "N", .help = "add bag columns B1..BN (the output is then a CSV with a header)"},
    {"max-bag", NULL, CTR_OPT_UINT, 0, AT(o.max_bag), .min = 1, .max = CTR_MAX_BAG, .metavar = "M", .help = "values per bag: 0..M, joined by '|'"},
    {"json", NULL, CTR_OPT_BOOL, 0, AT(json), .help = "the report on stderr as one JSON object"},
};

static const ctr_opts_t gen_spec = {
    gen_rows, CTR_ARRAY_LEN(gen_rows),
    "usage: ctrtool gen-data --rows N --out FILE|- [--seed S] [--model-seed M]\n"
    "                        [--bag-features N [--max-bag M]] [--json]\n"
    "Synthetic Criteo-shaped TSV rows (label, I1..I13, C1..C26) drawn from a hidden\n"
    "model fixed by --model-seed; --seed picks the rows (use another seed with the\n"
    "same model seed for a test set). Reports the hidden model's own AUC on the rows.\n"
    "With --bag-features N: a CSV with a header and bag columns B1..BN of 0..M values\n"
    "joined by '|', whose summed effects drive the label (train with --format csv\n"
    "--bag B1:|:M ...).\n\n",
    NULL,
};

int ctr__cmd_gen_data(int argc, char **argv)
{
    gen_args_t a = {.o = {.rows = 0, .seed = 1, .model_seed = 1, .max_bag = 10}};
    ctr_opts_result_t res;
    int st = ctr__tool_args("gen-data", &gen_spec, &a, sizeof a, argc, argv, &res);
    if (st >= 0)
        return st;
    const char *out = a.out;
    int to_stdout = !strcmp(out, "-");
    char tmp[4096];
    if (!to_stdout && snprintf(tmp, sizeof(tmp), "%s.tmp", out) >= (int)sizeof(tmp)) {
        fprintf(stderr, "ctrtool gen-data: path too long\n");
        return 2;
    }
    FILE *f = to_stdout ? stdout : fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "ctrtool gen-data: %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    char err[256];
    ctr_gendata_report_t rep;
    int rc = ctr_gendata_write(f, &a.o, &rep, err, sizeof(err));
    if (!rc && (fflush(f) || ferror(f)))
        rc = ctr_error(err, sizeof(err), CTR_EIO, "write failed: %s", strerror(errno));
    if (!to_stdout && fclose(f) && !rc)
        rc = ctr_error(err, sizeof(err), CTR_EIO, "close failed: %s", strerror(errno));
    if (!rc && !to_stdout && rename(tmp, out))
        rc = ctr_error(err, sizeof(err), CTR_EIO, "rename to %s: %s", out, strerror(errno));
    if (rc) {
        if (!to_stdout)
            remove(tmp);
        fprintf(stderr, "ctrtool gen-data: %s\n", err);
        return 1;
    }
    if (a.json)
        fprintf(stderr, "{\"rows\":%llu,\"positives\":%llu,\"generator_auc\":%.6f,\"generator_logloss\":%.6f}\n",
                (unsigned long long)rep.rows, (unsigned long long)rep.positives, rep.auc, rep.logloss);
    else
        fprintf(stderr, "gen-data: %llu rows to %s, positive rate %.4f; the hidden model's own "
                        "AUC %.4f, logloss %.4f (what a perfect learner could reach)\n",
                (unsigned long long)rep.rows, out, rep.rows ? (double)rep.positives / (double)rep.rows : 0.0,
                rep.auc, rep.logloss);
    return 0;
}
