/* test_score_bags.c - offline encoding (model/data.c, model/score.c: what
 * ctrtool score, eval and pd use) on models with bag and `mod` features:
 * rows [n][slots] equal to what the server's decoder gives for the same
 * values, a value the `mod` mapping refuses is a bad row (skipped and
 * counted, or the error naming line and column), and scores of a `mod`
 * model equal the server path's bit for bit.
 *
 * Here the test model's provenance records no bag separators, so a data
 * file's bag column is read as a bag of one value (an empty field: an
 * empty bag); a trained model that records them (data.bags) has its bag
 * columns split (tests/test_data_bags.c, tests/test_train_bags.sh). Bags
 * are patched into a loaded test model in memory; scores are compared for
 * a model without bags (bags' scores: tests/test_server_train_bags.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/decode.h"
#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "ctr/score.h"
#include "model_int.h"
#include "testutil.h"

static ctr_model_t *open_model(const char *name, uint64_t seed)
{
    char path[512], err[256];
    const uint32_t hidden[1] = {8};
    ctr_model_t *m = NULL;
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    if (test_make_model(path, seed, 2, 4, 300, 4, hidden, 1, CTR_ACT_SMELU, 1.0f) ||
        ctr_model_open(path, &m, err, sizeof err)) {
        fprintf(stderr, "test model: %s\n", err);
        exit(1);
    }
    remove(path);
    return m;
}

static void patch(ctr_model_t *m, size_t j, uint32_t bag_max, ctr_mapping_t map)
{
    struct ctr_model *mm = m;
    mm->cat[j].bag_max = bag_max;
    mm->cat[j].mapping = map;
}

static const char *write_csv(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    CTR_ASSERT(f && fputs(text, f) >= 0 && fclose(f) == 0);
    return path;
}

/* The rows and some of their values, and the /v1/score body with the same
 * values (empty fields left out). */
static const char *const CSV =
    "label,I1,I2,C1,C2,C3,C4\n"
    "1,3,0.5,a,x,ff,10\n"
    "0,,7,b,,1A,\n"
    "1,12,,,y,0,FFFFFFFFFFFFFFFF\n"
    "0,1,1,c,z,zz,1\n"            /* C3 "zz": not hex, a bad row */
    "1,2,2,d,w,12345678901234567,1\n"; /* 17 digits: a bad row */
static const char *const BODY =
    "{\"examples\":[{\"I1\":3,\"I2\":0.5,\"C1\":\"a\",\"C2\":[\"x\"],\"C3\":\"ff\",\"C4\":[\"10\"]},"
    "{\"I2\":7,\"C1\":\"b\",\"C3\":\"1A\"},"
    "{\"I1\":12,\"C2\":\"y\",\"C3\":\"0\",\"C4\":[\"FFFFFFFFFFFFFFFF\"]}]}";

static ctr_data_opts_t csv_opts(void)
{
    ctr_data_opts_t o;
    memset(&o, 0, sizeof o);
    o.format = CTR_DATA_CSV;
    return o;
}

static void test_load_bags(void)
{
    ctr_model_t *m = open_model("bags.ctrm", 3);
    patch(m, 1, 3, CTR_MAP_HASH);
    patch(m, 2, 0, CTR_MAP_MOD);
    patch(m, 3, 2, CTR_MAP_MOD);
    const ctr_model_def_t *def = ctr_model_def(m);
    size_t slots = ctr_model_slots(def);
    CHECK_EQ_SIZE(slots, 7);
    const char *path = write_csv("bags.csv", CSV);
    ctr_data_opts_t o = csv_opts();
    ctr_dataset_t ds;
    char err[512];
    FILE *log = tmpfile();
    int rc = ctr_dataset_load_for_model(path, &o, def, 1, log, &ds, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_SIZE(ds.n, 3);
        CHECK_EQ_UINT(ds.bad_rows, 2);
        CHECK_EQ_SIZE(ds.slots, slots);
        ctr_request_t req;
        ctr_decode_error_t e;
        int dr = ctr__decode_v1(m, BODY, strlen(BODY), NULL, &req, &e);
        CHECKF(dr == 0, "%s", e.message);
        if (dr == 0) {
            CHECK(req.n == ds.n && req.n_cat == slots);
            CHECK(!memcmp(req.rows, ds.rows, ds.n * slots * sizeof(uint32_t)));
            CHECK(!memcmp(req.dense, ds.dense, ds.n * def->n_dense * sizeof(float)));
            /* and what that is: row 1's C2 an empty bag, C4 too; C3 "1A" */
            CHECK(ds.rows[slots + 1] == CTR_EMPTY_SLOT && ds.rows[slots + 3] == CTR_EMPTY_SLOT);
            CHECK_EQ_UINT(ds.rows[slots + 4], 26);
            CHECK(ds.rows[slots + 5] == CTR_EMPTY_SLOT && ds.rows[slots + 6] == CTR_EMPTY_SLOT);
            CHECK_EQ_UINT(ds.rows[2 * slots + 5], (uint32_t)(UINT64_MAX % 301));
            ctr__request_release(&req);
        }
        ctr_dataset_free(&ds);
        /* The log names the line and the column of each bad row. */
        char text[1024] = "";
        rewind(log);
        size_t got = fread(text, 1, sizeof text - 1, log);
        text[got] = '\0';
        CHECKF(strstr(text, "line 5: C3: 'zz'") && strstr(text, "line 6: C3:"), "log: %s", text);
    }
    fclose(log);
    /* Without skip_bad the first one stops loading. */
    rc = ctr_dataset_load_for_model(path, &o, def, 0, NULL, &ds, err, sizeof err);
    CHECKF(rc == CTR_EFORMAT && strstr(err, "C3") && strstr(err, "'zz'"), "rc %d: %s", rc, err);

    /* Row by row (ctrtool score): the same rows; the bad one refused. */
    ctr_data_reader_t *r;
    const char *names[8];
    ctr_data_opts_for_model(&o, def, names);
    CHECK(ctr_data_open(path, &o, &r, err, sizeof err) == 0);
    float dense[2];
    uint32_t rows[7];
    const ctr_data_row_t *row;
    size_t good = 0, bad = 0;
    ctr_dataset_t all;
    CHECK(ctr_dataset_load_for_model(path, &o, def, 1, NULL, &all, err, sizeof err) == 0);
    while (ctr_data_next(r, &row, err, sizeof err) == 1) {
        if (ctr_data_encode_row(def, row, dense, rows, err, sizeof err)) {
            CHECKF(strstr(err, "C3") != NULL, "%s", err);
            bad++;
            continue;
        }
        CHECK(!memcmp(rows, all.rows + good * slots, sizeof rows));
        CHECK(!memcmp(dense, all.dense + good * 2, sizeof dense));
        good++;
    }
    CHECK(good == 3 && bad == 2);
    ctr_dataset_free(&all);
    ctr_data_close(r);
    remove(path);
    ctr_model_close(m);
}

/* A `mod` model without bags scores offline what the server path (decoder,
 * ctr_forward) scores, bit for bit, on every thread count. */
static void test_scores_mod(void)
{
    ctr_model_t *m = open_model("mod.ctrm", 4);
    patch(m, 2, 0, CTR_MAP_MOD);
    patch(m, 3, 0, CTR_MAP_MOD);
    const ctr_model_def_t *def = ctr_model_def(m);
    const char *path = write_csv("mod.csv",
                                 "label,I1,I2,C1,C2,C3,C4\n"
                                 "1,3,0.5,a,x,ff,10\n"
                                 "0,,7,b,,1A,\n"
                                 "1,12,,,y,0,FFFFFFFFFFFFFFFF\n");
    const char *body =
        "{\"examples\":[{\"I1\":3,\"I2\":0.5,\"C1\":\"a\",\"C2\":\"x\",\"C3\":255,\"C4\":16},"
        "{\"I2\":7,\"C1\":\"b\",\"C3\":\"1a\"},"
        "{\"I1\":12,\"C2\":\"y\",\"C3\":0,\"C4\":\"ffffffffffffffff\"}]}";
    ctr_data_opts_t o = csv_opts();
    ctr_dataset_t ds;
    char err[512];
    const ctr_kernel_t *k = ctr_kernel_select(CTR_KERNEL_AUTO, err, sizeof err);
    CHECK(k != NULL);
    int rc = ctr_dataset_load_for_model(path, &o, def, 0, NULL, &ds, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    ctr_request_t req;
    ctr_decode_error_t e;
    int dr = ctr__decode_v1(m, body, strlen(body), NULL, &req, &e);
    CHECKF(dr == 0, "%s", e.message);
    if (rc == 0 && dr == 0 && k) {
        float off[3], srv[3];
        ctr_scratch_t *s;
        CHECK(ctr_scratch_new(def, 8, &s, NULL, 0) == 0);
        CHECK(ctr_forward(def, k, req.n, req.dense, req.rows, srv, NULL, s) == 0);
        for (unsigned t = 1; t <= 3; t++) {
            CHECK(ctr_score_dataset(def, k, ds.n, ds.dense, ds.rows, off, t) == 0);
            CHECK(!memcmp(off, srv, sizeof off));
        }
        printf("mod model: offline and server scores %.9g %.9g %.9g, bit-identical\n",
               (double)off[0], (double)off[1], (double)off[2]);
        ctr_scratch_free(s);
    }
    if (dr == 0)
        ctr__request_release(&req);
    if (rc == 0)
        ctr_dataset_free(&ds);
    remove(path);
    ctr_model_close(m);
}

int main(void)
{
    test_load_bags();
    test_scores_mod();
    rmdir(test_tmpdir());
    return test_main_end();
}
