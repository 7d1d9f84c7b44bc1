/* test_data_bags.c - bag columns in data files (model/data.c, data.h):
 * a categorical column named in opts.bags is split on its separator into
 * values; too many values, an empty element or an over-long one make a
 * bad row naming file:line and the column; an empty field is an empty
 * bag; the split happens after CSV unquoting (a quoted field may hold the
 * delimiter as its separator); Criteo TSV columns work the same way. The
 * encoded slots (ctr_dataset_load, ctr_data_encode_row) are the rows of
 * the values in order, the rest CTR_EMPTY_SLOT, as the server encodes
 * them (ctr_features_encode_values); a model's bag separators come back
 * from its provenance (ctr_data_opts_for_model). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/features.h"
#include "testutil.h"

/* Files made here, removed at the end. */
static char made[16][512];
static int n_made;

static char *tmp_file(const char *name, const char *text)
{
    CTR_ASSERT(n_made < 16);
    char *p = made[n_made++];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

/* Column j's values of row as "v1 v2 ..." (or "-" for none). */
static const char *vals(const ctr_data_row_t *row, size_t j)
{
    static char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t k = row->val_off[j]; k < row->val_off[j + 1]; k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%.*s", n ? " " : "", (int)row->val_len[k],
                              row->val[k]);
    return n ? buf : "-";
}

static const ctr_data_bag_t TAGS3 = {"tags", '|', 3};

static ctr_data_opts_t csv_opts(const ctr_data_bag_t *bags, size_t n_bags)
{
    static const char *const cat[] = {"a", "tags"};
    ctr_data_opts_t o = {.format = CTR_DATA_CSV, .n_cat = 2, .cat = cat};
    o.n_bags = n_bags;
    o.bags = bags;
    return o;
}

/* Values, empty bags, quoting, and the bad rows among good ones: each
 * reported with FILE:LINE and the column, the reader going on after it. */
static void test_csv_split(void)
{
    const char *p = tmp_file("bags.csv",
                             "label,a,tags\n"
                             "1,x,p|q|r\n"          /* 2: three values */
                             "0,x,\n"               /* 3: empty bag */
                             "1,,\"p|q\"\n"         /* 4: quoted, a missing plain value */
                             "0,x,p|q|r|s\n"        /* 5: too many */
                             "1,x,p||q\n"           /* 6: empty element */
                             "1,x,p|\n"             /* 7: empty last element */
                             "1,x,|p\n"             /* 8: empty first element */
                             "1,x,p|q|r|s|t|u\n"    /* 9: too many */
                             "0,a|b,s\n"            /* 10: a plain column keeps its '|' */
                             "1,x,\"p,q\"\n"        /* 11: the CSV delimiter is just a byte */
                             "1,x,p|q|"
                             "0123456789012345678901234567890123456789012345678901234567890123456789\n" /* 12 */
                             "0,y,p|p\n");          /* 13: a repeated value */
    ctr_data_opts_t o = csv_opts(&TAGS3, 1);
    ctr_data_reader_t *r;
    char err[512];
    CHECKF(ctr_data_open(p, &o, &r, err, sizeof err) == 0, "%s", err);
    const ctr_data_row_t *row;
    struct {
        unsigned line;
        const char *a, *tags, *bad;
    } want[] = {
        {2, "x", "p q r", NULL},
        {3, "x", "-", NULL},
        {4, "-", "p q", NULL},
        {5, NULL, NULL, "tags: more than 3 values"},
        {6, NULL, NULL, "tags: value 2 of the bag is empty"},
        {7, NULL, NULL, "tags: value 2 of the bag is empty"},
        {8, NULL, NULL, "tags: value 1 of the bag is empty"},
        {9, NULL, NULL, "tags: more than 3 values"},
        {10, "a|b", "s", NULL},
        {11, "x", "p,q", NULL},
        {12, NULL, NULL, "tags: value 3 of the bag, of 70 bytes, is over the 64-byte limit"},
        {13, "y", "p p", NULL},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(want); i++) {
        err[0] = '\0';
        int rc = ctr_data_next(r, &row, err, sizeof err);
        char where[600];
        snprintf(where, sizeof where, "%s:%u: ", p, want[i].line);
        if (want[i].bad) {
            CHECKF(rc == CTR_EFORMAT && strstr(err, where) == err && strstr(err, want[i].bad),
                   "line %u: rc %d: %s", want[i].line, rc, err);
            continue;
        }
        CHECKF(rc == 1, "line %u: rc %d: %s", want[i].line, rc, err);
        if (rc != 1)
            break;
        CHECK_EQ_UINT(row->line, want[i].line);
        CHECK_EQ_STR(vals(row, 0), want[i].a);
        CHECK_EQ_STR(vals(row, 1), want[i].tags);
    }
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 0);
    ctr_data_close(r);

    /* The separator may be the delimiter itself when the field is quoted;
     * the raw field (cat[j]) stays whole. */
    p = tmp_file("comma.csv", "label,a,tags\n1,x,\"p,q,r\"\n0,x,p\n1,x,p,q\n");
    ctr_data_bag_t comma = {"tags", ',', 3};
    o = csv_opts(&comma, 1);
    CHECKF(ctr_data_open(p, &o, &r, err, sizeof err) == 0, "%s", err);
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
    CHECK_EQ_STR(vals(row, 1), "p q r");
    CHECK(row->cat_len[1] == 5 && !memcmp(row->cat[1], "p,q,r", 5));
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
    CHECK_EQ_STR(vals(row, 1), "p");
    CHECK(ctr_data_next(r, &row, err, sizeof err) == CTR_EFORMAT); /* unquoted: 4 fields */
    ctr_data_close(r);
}

/* Criteo TSV: a C column as a bag; a tab separator is refused. */
static void test_criteo_split(void)
{
    char line[1024];
    size_t n = 0;
    n += (size_t)snprintf(line + n, sizeof line - n, "1");
    for (int k = 1; k <= 13; k++)
        n += (size_t)snprintf(line + n, sizeof line - n, "\t%d", k);
    for (int j = 1; j <= 26; j++)
        n += (size_t)snprintf(line + n, sizeof line - n, "\t%s",
                              j == 3 ? "aa;bb;cc" : j == 4 ? "" : "68fd1e64");
    snprintf(line + n, sizeof line - n, "\n");
    const char *p = tmp_file("bags.tsv", line);
    ctr_data_bag_t bags[] = {{"C3", ';', 5}, {"C4", ';', 2}};
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO, .n_bags = 2, .bags = bags};
    ctr_data_reader_t *r;
    char err[512];
    CHECKF(ctr_data_open(p, &o, &r, err, sizeof err) == 0, "%s", err);
    const ctr_data_row_t *row;
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
    CHECK_EQ_STR(vals(row, 2), "aa bb cc");
    CHECK_EQ_STR(vals(row, 3), "-");
    CHECK_EQ_STR(vals(row, 4), "68fd1e64");
    CHECK_EQ_SIZE(row->val_off[26], 25 + 3 - 1);
    ctr_data_close(r);

    ctr_data_bag_t tab = {"C3", '\t', 5};
    o.n_bags = 1;
    o.bags = &tab;
    CHECK(ctr_data_open(p, &o, &r, err, sizeof err) == CTR_EINVAL && strstr(err, "tab"));
}

/* What ctr_data_open refuses in opts.bags. */
static void test_open_errors(void)
{
    const char *p = tmp_file("h.csv", "label,a,tags,d\n1,x,p,3\n");
    static const char *const dense[] = {"d"};
    struct {
        ctr_data_bag_t b[2];
        size_t n;
        const char *what;
    } cases[] = {
        {{{"d", '|', 3}}, 1, "'d' is not one of the categorical columns"},
        {{{"nope", '|', 3}}, 1, "'nope' is not one of the categorical columns"},
        {{{"tags", '|', 3}, {"tags", ';', 3}}, 2, "named twice"},
        {{{"tags", '|', 0}}, 1, "must be 1..1024"},
        {{{"tags", '|', CTR_MAX_BAG + 1}}, 1, "must be 1..1024"},
        {{{"tags", '"', 3}}, 1, "cannot be used"},
        {{{"tags", '\0', 3}}, 1, "cannot be used"},
        {{{"tags", '\n', 3}}, 1, "cannot be used"},
    };
    for (size_t i = 0; i < CTR_ARRAY_LEN(cases); i++) {
        ctr_data_opts_t o = csv_opts(cases[i].b, cases[i].n);
        o.n_dense = 1;
        o.dense = dense;
        ctr_data_reader_t *r = NULL;
        char err[512] = "";
        int rc = ctr_data_open(p, &o, &r, err, sizeof err);
        CHECKF(rc == CTR_EINVAL && strstr(err, cases[i].what), "case %zu: rc %d: %s", i, rc, err);
        CHECK(r == NULL);
    }
}

/* Encoded slots: the rows of the values in order, the rest empty; the same
 * as ctr_features_encode_values (the server's path) and ctr_data_encode_row. */
static void test_encode(void)
{
    const char *p = tmp_file("enc.csv",
                             "label,a,tags\n"
                             "1,x,p|q|r\n"
                             "0,,\n"
                             "1,y,q|q\n"
                             "0,x,p|q|r|s\n"); /* too many: skipped */
    ctr_cat_def_t cats[2] = {{.name = "a", .buckets = 1000, .dim = 2, .seed = 5},
                             {.name = "tags", .buckets = 1000, .dim = 2, .seed = 6, .bag_max = 4,
                              .pool = CTR_POOL_SUM}};
    ctr_data_opts_t o = csv_opts(&TAGS3, 1);
    ctr_dataset_t ds;
    char err[512];
    FILE *log = tmpfile();
    int rc = ctr_dataset_load(p, &o, NULL, cats, 1, log, &ds, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK_EQ_SIZE(ds.n, 3);
    CHECK_EQ_UINT(ds.bad_rows, 1);
    CHECK_EQ_SIZE(ds.slots, 5);
    const char *v[3][4] = {{"p", "q", "r"}, {NULL}, {"q", "q"}};
    const size_t m[3] = {3, 0, 2};
    for (size_t i = 0; i < 3; i++) {
        uint32_t want[4];
        size_t lens[4];
        for (size_t k = 0; k < m[i]; k++)
            lens[k] = strlen(v[i][k]);
        CHECK(ctr_features_encode_values(&cats[1], v[i], lens, m[i], want, NULL) == 0);
        CHECKF(!memcmp(ds.rows + i * 5 + 1, want, sizeof want), "row %zu", i);
        for (size_t k = m[i]; k < 4; k++)
            CHECK(ds.rows[i * 5 + 1 + k] == CTR_EMPTY_SLOT);
    }
    CHECK_EQ_UINT(ds.rows[0], ctr_features_cat_row(&cats[0], "x", 1));
    CHECK_EQ_UINT(ds.rows[5], CTR_MISSING_ROW);
    CHECK(ds.rows[2 * 5 + 1] == ds.rows[2 * 5 + 2]);
    char text[1024] = "";
    rewind(log);
    text[fread(text, 1, sizeof text - 1, log)] = '\0';
    CHECKF(strstr(text, ":5: tags: more than 3 values"), "log: %s", text);
    fclose(log);

    /* Row by row through ctr_data_encode_row: the same slots. */
    ctr_model_def_t def = {.n_cat = 2, .cat = cats};
    ctr_data_reader_t *r;
    CHECK(ctr_data_open(p, &o, &r, err, sizeof err) == 0);
    const ctr_data_row_t *row;
    uint32_t slots[5];
    for (size_t i = 0; i < 3; i++) {
        CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
        CHECK(ctr_data_encode_row(&def, row, NULL, slots, err, sizeof err) == 0);
        CHECKF(!memcmp(slots, ds.rows + i * 5, sizeof slots), "row %zu", i);
    }
    ctr_data_close(r);
    ctr_dataset_free(&ds);

    /* A bag wider than its feature, or a bag into a single-valued feature,
     * is refused before any row is read. */
    cats[1].bag_max = 2;
    rc = ctr_dataset_load(p, &o, NULL, cats, 1, NULL, &ds, err, sizeof err);
    CHECKF(rc == CTR_EINVAL && strstr(err, "'tags' is read as a bag of up to 3 values") &&
               strstr(err, "at most 2"), "rc %d: %s", rc, err);
    cats[1].bag_max = 0;
    rc = ctr_dataset_load(p, &o, NULL, cats, 1, NULL, &ds, err, sizeof err);
    CHECKF(rc == CTR_EINVAL && strstr(err, "takes one value"), "rc %d: %s", rc, err);
}

/* ctr_data_opts_for_model: a bag feature whose separator the provenance
 * records is split (at most bag_max values); without it the field is one
 * value, a bag of one. */
static void test_model_bags(void)
{
    const char *p = tmp_file("m.csv", "label,a,tags\n1,x,p;q\n0,x,p;q;r\n");
    ctr_cat_def_t cats[2] = {{.name = "a", .buckets = 100, .dim = 2},
                             {.name = "tags", .buckets = 100, .dim = 2, .bag_max = 2}};
    ctr_model_def_t def = {
        .n_cat = 2, .cat = cats,
        .provenance_json = "{\"data\":{\"bags\":[{\"column\":\"tags\",\"sep\":\";\",\"max\":2},"
                           "{\"column\":\"gone\",\"sep\":\";\",\"max\":2}]}}",
    };
    ctr_data_opts_t o = {.format = CTR_DATA_CSV};
    const char *names[2];
    ctr_data_opts_for_model(&o, &def, names);
    CHECK(o.bag_model == &def && o.n_cat == 2);
    ctr_data_reader_t *r;
    char err[512];
    CHECKF(ctr_data_open(p, &o, &r, err, sizeof err) == 0, "%s", err);
    const ctr_data_row_t *row;
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
    CHECK_EQ_STR(vals(row, 1), "p q");
    CHECK(ctr_data_next(r, &row, err, sizeof err) == CTR_EFORMAT && strstr(err, "more than 2"));
    ctr_data_close(r);

    def.provenance_json = "{\"tool\":\"export\"}";
    CHECK(ctr_data_open(p, &o, &r, err, sizeof err) == 0);
    CHECK(ctr_data_next(r, &row, err, sizeof err) == 1);
    CHECK_EQ_STR(vals(row, 1), "p;q");
    ctr_data_close(r);
}

int main(void)
{
    test_csv_split();
    test_criteo_split();
    test_open_errors();
    test_encode();
    test_model_bags();
    for (int i = 0; i < n_made; i++)
        remove(made[i]);
    rmdir(test_tmpdir());
    return test_main_end();
}
