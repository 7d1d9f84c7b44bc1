/* test_data.c - Criteo TSV and CSV readers: values, missing fields,
 * every kind of bad row reported with its line number, --skip-bad counts,
 * CSV quoting and column order, compressed input, and (when present) the
 * real Criteo sample read end to end. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/features.h"
#include "testutil.h"

static char *tmp_file(const char *name, const char *text)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
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

/* A Criteo line: label, 13 ints, 26 categoricals from a template. */
static void criteo_line(char *buf, size_t len, const char *label, const char *i3,
                        const char *c5)
{
    size_t n = (size_t)snprintf(buf, len, "%s", label);
    for (int k = 1; k <= 13; k++)
        n += (size_t)snprintf(buf + n, len - n, "\t%s", k == 3 ? i3 : k == 2 ? "-1" : k == 1 ? "" : "7");
    for (int j = 1; j <= 26; j++)
        n += (size_t)snprintf(buf + n, len - n, "\t%s", j == 5 ? c5 : j == 7 ? "" : "68fd1e64");
    snprintf(buf + n, len - n, "\n");
}

static void test_criteo_rows(void)
{
    char l1[1024], l2[1024], text[4096];
    criteo_line(l1, sizeof(l1), "1", "12", "abc");
    criteo_line(l2, sizeof(l2), "0", "", "");
    snprintf(text, sizeof(text), "%s\n%s", l1, l2); /* an empty line in between is skipped */
    const char *p = tmp_file("ok.tsv", text);
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO};
    ctr_data_reader_t *r;
    char err[512];
    CHECK(ctr_data_open(p, &o, &r, err, sizeof(err)) == 0);
    const ctr_data_row_t *row;
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECK(row->line == 1 && row->label == 1);
    CHECK(isnan(row->dense[0]) && row->dense[1] == -1.0 && row->dense[2] == 12.0);
    CHECK(row->cat[4] && row->cat_len[4] == 3 && !memcmp(row->cat[4], "abc", 3));
    CHECK(row->cat[6] == NULL);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECKF(row->line == 3, "line %llu", (unsigned long long)row->line);
    CHECK(row->label == 0 && isnan(row->dense[2]) && row->cat[4] == NULL);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 0);
    ctr_data_close(r);
}

/* Each bad line must fail with "FILE:LINE:" and a word about what. */
static void expect_bad(const char *name, const char *text, ctr_data_opts_t o, unsigned bad_line,
                       const char *what)
{
    const char *p = tmp_file(name, text);
    ctr_data_reader_t *r;
    char err[512], want[600];
    if (ctr_data_open(p, &o, &r, err, sizeof(err))) {
        CHECKF(0, "%s: open: %s", name, err);
        return;
    }
    snprintf(want, sizeof(want), "%s:%u: ", p, bad_line);
    const ctr_data_row_t *row;
    int rc, seen_bad = 0, after = 0;
    while ((rc = ctr_data_next(r, &row, err, sizeof(err))) != 0) {
        if (rc == CTR_EFORMAT) {
            seen_bad++;
            CHECKF(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", name, err, want);
            CHECKF(strstr(err, what) != NULL, "%s: message '%s' lacks '%s'", name, err, what);
        } else if (rc < 0) {
            CHECKF(0, "%s: fatal %d: %s", name, rc, err);
            break;
        } else if (seen_bad) {
            after++;
        }
    }
    CHECKF(seen_bad == 1, "%s: %d bad rows seen", name, seen_bad);
    CHECKF(after == 1, "%s: reading must go on after the bad row (%d rows after)", name, after);
    ctr_data_close(r);
}

static void test_criteo_errors(void)
{
    char good[1024], bad[1200], text[4096];
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO};
    criteo_line(good, sizeof(good), "0", "3", "x");

    criteo_line(bad, sizeof(bad), "1", "3", "x");
    bad[strlen(bad) - 1] = '\0';
    strcat(bad, "\textra\n");
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("count.tsv", text, o, 2, "found 41");

    criteo_line(bad, sizeof(bad), "1", "3.5", "x");
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("float.tsv", text, o, 2, "I3: '3.5' is not an integer");

    criteo_line(bad, sizeof(bad), "1", "abc", "x");
    snprintf(text, sizeof(text), "%s%s%s%s", good, good, bad, good);
    expect_bad("word.tsv", text, o, 3, "not an integer");

    criteo_line(bad, sizeof(bad), "1", "99999999999999999999", "x");
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("range.tsv", text, o, 2, "out of the 64-bit integer range");

    char longv[80];
    memset(longv, 'a', 65);
    longv[65] = '\0';
    criteo_line(bad, sizeof(bad), "1", "3", longv);
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("long.tsv", text, o, 2, "C5: value of 65 bytes is over the 64-byte limit");
    longv[64] = '\0'; /* exactly the limit is fine */
    criteo_line(bad, sizeof(bad), "1", "3", longv);
    snprintf(text, sizeof(text), "%s%s%s", good, bad, bad);
    const char *p = tmp_file("limit.tsv", text);
    ctr_dataset_t ds;
    char err[512];
    ctr_cat_def_t cats[26];
    for (int j = 0; j < 26; j++)
        cats[j] = (ctr_cat_def_t){.name = "C", .buckets = 100, .dim = 1, .seed = (uint64_t)j};
    CHECK(ctr_dataset_load(p, &o, NULL, cats, 0, NULL, &ds, err, sizeof(err)) == 0 && ds.n == 3);
    ctr_dataset_free(&ds);

    criteo_line(bad, sizeof(bad), "2", "3", "x");
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("label.tsv", text, o, 2, "label: '2' is not 0 or 1");

    criteo_line(bad, sizeof(bad), "", "3", "x");
    snprintf(text, sizeof(text), "%s%s%s", good, bad, good);
    expect_bad("nolabel.tsv", text, o, 2, "label");

    /* An over-long line is reported and skipped to its newline. */
    ctr_data_opts_t small = o;
    small.max_line = 400;
    char big[1200];
    criteo_line(big, sizeof(big), "1", "3", "x");
    big[strlen(big) - 1] = '\0';
    for (int i = 0; i < 30; i++)
        strcat(big, "zzzzzzzzzzzzzzzz");
    strcat(big, "\n");
    snprintf(text, sizeof(text), "%s%s%s", good, big, good);
    expect_bad("overlong.tsv", text, small, 2, "line longer than 400 bytes");
    /* ... also as the last line, without a newline: no tail is left over. */
    big[strlen(big) - 1] = '\0';
    snprintf(text, sizeof(text), "%s%s", good, big);
    const char *pl = tmp_file("overlong_last.tsv", text);
    ctr_data_reader_t *r;
    const ctr_data_row_t *row;
    CHECK(ctr_data_open(pl, &small, &r, err, sizeof(err)) == 0);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == CTR_EFORMAT);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 0);
    ctr_data_close(r);
}

static void test_skip_bad_counts(void)
{
    char good[1024], bad[1024], text[16384] = "";
    criteo_line(good, sizeof(good), "1", "5", "v");
    criteo_line(bad, sizeof(bad), "1", "x5", "v");
    for (int i = 0; i < 20; i++)
        strcat(text, i % 4 == 1 ? bad : good); /* lines 2, 6, 10, 14, 18 bad */
    const char *p = tmp_file("skip.tsv", text);
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO};
    ctr_cat_def_t cats[26];
    for (int j = 0; j < 26; j++)
        cats[j] = (ctr_cat_def_t){.name = "C", .buckets = 100, .dim = 1, .seed = (uint64_t)j};
    ctr_dataset_t ds;
    char err[512];
    int rc = ctr_dataset_load(p, &o, NULL, cats, 0, NULL, &ds, err, sizeof(err));
    CHECK(rc == CTR_EFORMAT);
    CHECKF(strstr(err, ":2: I3: 'x5' is not an integer") != NULL, "%s", err);
    FILE *log = tmpfile();
    rc = ctr_dataset_load(p, &o, NULL, cats, 1, log, &ds, err, sizeof(err));
    CHECK(rc == 0);
    CHECKF(ds.n == 15 && ds.bad_rows == 5, "n %zu bad %llu", ds.n, (unsigned long long)ds.bad_rows);
    rewind(log);
    char logtext[4096] = "";
    size_t got = fread(logtext, 1, sizeof(logtext) - 1, log);
    logtext[got] = '\0';
    CHECKF(strstr(logtext, "skip.tsv:18:") && strstr(logtext, "skipped 5 bad rows"), "log: %s", logtext);
    fclose(log);
    ctr_dataset_free(&ds);
}

static void test_csv(void)
{
    /* Header with a BOM, reordered columns, a quoted value with a comma
     * and an escaped quote, CRLF line ends, blanks around numbers. */
    const char *text =
        "\xef\xbb\xbfsite,clicked,\"price\",user\r\n"
        "\"a,b\", 1 , 2.5 ,u1\r\n"
        "\"say \"\"hi\"\"\",0,,\r\n"
        "s3,1,1e3,u3\r\n";
    const char *p = tmp_file("a.csv", text);
    const char *dense[] = {"price"};
    const char *cat[] = {"user", "site"};
    ctr_data_opts_t o = {.format = CTR_DATA_CSV, .label = "clicked", .n_dense = 1, .dense = dense,
                         .n_cat = 2, .cat = cat};
    ctr_data_reader_t *r;
    char err[512];
    if (ctr_data_open(p, &o, &r, err, sizeof(err))) {
        CHECKF(0, "open: %s", err);
        return;
    }
    const ctr_data_row_t *row;
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECK(row->line == 2 && row->label == 1 && row->dense[0] == 2.5);
    CHECK(row->cat_len[0] == 2 && !memcmp(row->cat[0], "u1", 2));
    CHECK(row->cat_len[1] == 3 && !memcmp(row->cat[1], "a,b", 3));
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECK(row->label == 0 && isnan(row->dense[0]) && row->cat[0] == NULL);
    CHECK(row->cat_len[1] == 8 && !memcmp(row->cat[1], "say \"hi\"", 8));
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1);
    CHECK(row->dense[0] == 1000.0);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 0);
    ctr_data_close(r);

    /* Unknown column: named at open. */
    const char *nope[] = {"nope"};
    ctr_data_opts_t o2 = o;
    o2.dense = nope;
    CHECK(ctr_data_open(p, &o2, &r, err, sizeof(err)) == CTR_ENOTFOUND);
    CHECKF(strstr(err, ":1: no column named 'nope'") != NULL, "%s", err);

    ctr_data_opts_t csvo = o;
    expect_bad("badnum.csv", "site,clicked,price,user\nx,1,2,u\ny,0,abc,u\nz,1,3,u\n", csvo, 3,
               "price: 'abc' is not a finite number");
    expect_bad("inf.csv", "site,clicked,price,user\nx,1,2,u\ny,0,inf,u\nz,1,3,u\n", csvo, 3,
               "not a finite number");
    expect_bad("fields.csv", "site,clicked,price,user\nx,1,2,u\ny,0,1\nz,1,3,u\n", csvo, 3,
               "found 3");
    expect_bad("quote.csv", "site,clicked,price,user\nx,1,2,u\n\"y,0,1,u\nz,1,3,u\n", csvo, 3,
               "unterminated quoted field");
    expect_bad("lab.csv", "site,clicked,price,user\nx,1,2,u\ny,yes,1,u\nz,1,3,u\n", csvo, 3,
               "label: 'yes' is not 0 or 1");
}

static void test_label_optional(void)
{
    char l1[1024], text[4096];
    criteo_line(l1, sizeof(l1), "1", "4", "q");
    /* The same row without its label column (Kaggle test.txt shape). */
    snprintf(text, sizeof(text), "%s%s", l1, strchr(l1, '\t') + 1);
    const char *p = tmp_file("nolab.tsv", text);
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO, .label_optional = 1};
    ctr_data_reader_t *r;
    char err[512];
    CHECK(ctr_data_open(p, &o, &r, err, sizeof(err)) == 0);
    const ctr_data_row_t *row;
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1 && row->label == 1 && row->dense[2] == 4);
    CHECK(ctr_data_next(r, &row, err, sizeof(err)) == 1 && row->label == -1 && row->dense[2] == 4);
    CHECK(row->cat[4] && !memcmp(row->cat[4], "q", 1));
    ctr_data_close(r);
}

static int have_prog(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

static void test_compressed(void)
{
    char good[1024], text[32768] = "";
    criteo_line(good, sizeof(good), "1", "5", "v");
    for (int i = 0; i < 50; i++)
        strcat(text, good);
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO};
    ctr_cat_def_t cats[26];
    for (int j = 0; j < 26; j++)
        cats[j] = (ctr_cat_def_t){.name = "C", .buckets = 100, .dim = 1, .seed = (uint64_t)j};
    const char *progs[] = {"xz", "gzip"};
    for (int i = 0; i < 2; i++) {
        /* make deps installs both: a missing one is a broken machine. */
        CHECKF(have_prog(progs[i]), "%s is not installed (make deps installs it)", progs[i]);
        if (!have_prog(progs[i]))
            continue;
        char *p = tmp_file(i ? "c.tsv" : "x.tsv", text);
        char cmd[1200], comp[600];
        snprintf(cmd, sizeof(cmd), "%s -kf '%s'", progs[i], p);
        CHECK(system(cmd) == 0);
        snprintf(comp, sizeof(comp), "%s.%s", p, i ? "gz" : "xz");
        ctr_dataset_t ds;
        char err[512];
        CHECKF(ctr_dataset_load(comp, &o, NULL, cats, 0, NULL, &ds, err, sizeof(err)) == 0,
               "%s", err);
        CHECK(ds.n == 50);
        ctr_dataset_free(&ds);
        /* Truncated archive: an error, never a short data set. */
        snprintf(cmd, sizeof(cmd), "truncate -s 60 '%s'", comp);
        CHECK(system(cmd) == 0);
        int rc = ctr_dataset_load(comp, &o, NULL, cats, 1, NULL, &ds, err, sizeof(err));
        CHECKF(rc == CTR_EIO && strstr(err, "failed"), "%s truncated: rc %d: %s", progs[i], rc, err);
    }
}

/* The real sample: every row reads cleanly, positive rate as documented. */
static void test_real_criteo(void)
{
    const char *path = "../shared/data/criteo/criteo_sample.tsv.xz";
    if (access(path, R_OK) != 0) {
        printf("note: %s absent, real-data check skipped\n", path);
        return;
    }
    ctr_data_opts_t o = {.format = CTR_DATA_CRITEO};
    ctr_cat_def_t cats[26];
    for (int j = 0; j < 26; j++)
        cats[j] = (ctr_cat_def_t){.name = "C", .buckets = 65536, .dim = 1, .seed = (uint64_t)j};
    ctr_dataset_t ds;
    char err[512];
    int rc = ctr_dataset_load(path, &o, NULL, cats, 0, NULL, &ds, err, sizeof(err));
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return;
    size_t pos = 0, miss12 = 0;
    for (size_t i = 0; i < ds.n; i++) {
        pos += ds.labels[i];
        miss12 += isnan(ds.raw_dense[i * 13 + 11]);
    }
    CHECKF(ds.n == 117139, "rows %zu", ds.n);
    CHECKF(fabs((double)pos / (double)ds.n - 0.2556) < 0.0005, "positive rate %f", (double)pos / (double)ds.n);
    CHECKF(fabs((double)miss12 / (double)ds.n - 0.77) < 0.01, "I12 missing %f", (double)miss12 / (double)ds.n);
    ctr_dataset_free(&ds);
}

int main(void)
{
    test_criteo_rows();
    test_criteo_errors();
    test_skip_bad_counts();
    test_csv();
    test_label_optional();
    test_compressed();
    test_real_criteo();
    return test_main_end();
}
