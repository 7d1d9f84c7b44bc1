/* fuzz_data_bags.c - libFuzzer target for bag columns in the data-file
 * reader (model/data.c): ctr_data_next's splitting of a bag column into
 * values, and ctr_dataset_load's encoding of them into a bag feature's
 * slots. The first input byte picks the options, the rest is the file (a
 * memfd opened by path, as in fuzz_data.c):
 *
 *   bit 0     format: 0 criteo (bags C1 and C26), 1 csv (columns label,
 *             d, a, tags, t2; bags tags and t2)
 *   bits 1-2  separator: '|' ';' ',' ' ' (',' is the CSV delimiter: only a
 *             quoted field holds more than one value)
 *   bits 3-4  most values: 1, 2, 5, CTR_MAX_BAG
 *   bit 5     ctr_dataset_load (skip_bad) instead of the row loop
 *   bit 6     the bags from a model's provenance (ctr_data_opts_for_model)
 *             instead of opts.bags
 *   bit 7     mapping mod (refuses non-hex values) instead of hash
 *
 * Every row handed out is checked against the contract: a column's values
 * lie inside its field, are non-empty, at most CTR_MAX_CAT_BYTES, free of
 * the separator and at most the bag's limit (one for a plain column); the
 * encoded slots are table rows followed only by CTR_EMPTY_SLOT. Seeds:
 * tests/fuzz/corpus/data_bags/. Build and run: make fuzz. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/features.h"
#include "ctr/model.h"
#include "fuzz.h"

#define MAX_ROWS 100000
#define BUCKETS 1000

static volatile size_t g_sink;

static void check_row(const ctr_data_row_t *row, size_t nc, const char *seps, const uint32_t *max)
{
    if (row->val_off[0] != 0)
        abort();
    for (size_t j = 0; j < nc; j++) {
        size_t a = row->val_off[j], b = row->val_off[j + 1];
        if (b < a || b - a > (seps[j] ? max[j] : 1) || (row->cat[j] == NULL) != (a == b))
            abort();
        if (a == b)
            continue;
        const char *f = row->cat[j], *end = f + row->cat_len[j];
        for (size_t k = a; k < b; k++) {
            const char *v = row->val[k];
            size_t len = row->val_len[k];
            if (len == 0 || len > CTR_MAX_CAT_BYTES || v < f || v + len > end)
                abort();
            if (seps[j] && memchr(v, seps[j], len))
                abort();
            g_sink += (unsigned char)v[len - 1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (size < 1)
        return 0;
    const uint8_t opt = data[0];
    data++;
    size--;
    if ((size >= 6 && !memcmp(data, "\xfd" "7zXZ\0", 6)) || (size >= 2 && !memcmp(data, "\x1f\x8b", 2)))
        return 0;
    if (fd < 0) {
        fd = memfd_create("fuzz.data_bags", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0))
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }

    static const char sep_of[] = {'|', ';', ',', ' '};
    static const uint32_t max_of[] = {1, 2, 5, CTR_MAX_BAG};
    const int csv = opt & 1;
    const char sep = sep_of[(opt >> 1) & 3];
    const uint32_t max = max_of[(opt >> 3) & 3];
    static const char *const csv_dense[] = {"d"};
    static const char *const csv_cat[] = {"a", "tags", "t2"};
    const char *const *cat_names = csv ? csv_cat : ctr_criteo_cat_names;
    const size_t nc = csv ? 3 : CTR_CRITEO_N_CAT;
    const size_t bag_a = csv ? 1 : 0, bag_b = csv ? 2 : CTR_CRITEO_N_CAT - 1;

    /* The features a model would have: bags where the columns are bags. */
    ctr_cat_def_t cd[CTR_CRITEO_N_CAT];
    char seps[CTR_CRITEO_N_CAT];
    uint32_t maxes[CTR_CRITEO_N_CAT];
    memset(cd, 0, sizeof cd);
    memset(seps, 0, sizeof seps);
    memset(maxes, 0, sizeof maxes);
    for (size_t j = 0; j < nc; j++) {
        cd[j].name = cat_names[j];
        cd[j].buckets = BUCKETS;
        cd[j].dim = 1;
        cd[j].seed = j;
        cd[j].mapping = (opt & 0x80) ? CTR_MAP_MOD : CTR_MAP_HASH;
    }
    cd[bag_a].bag_max = cd[bag_b].bag_max = max;
    seps[bag_a] = seps[bag_b] = sep;
    maxes[bag_a] = maxes[bag_b] = max;

    ctr_data_opts_t o;
    memset(&o, 0, sizeof(o));
    o.format = csv ? CTR_DATA_CSV : CTR_DATA_CRITEO;
    if (csv) {
        o.n_dense = 1;
        o.dense = csv_dense;
        o.n_cat = nc;
        o.cat = csv_cat;
    }
    ctr_data_bag_t bags[2] = {{cat_names[bag_a], sep, max}, {cat_names[bag_b], sep, max}};
    char prov[256];
    ctr_dense_def_t dd[CTR_CRITEO_N_DENSE];
    memset(dd, 0, sizeof dd);
    ctr_model_def_t def;
    memset(&def, 0, sizeof def);
    const char *names[CTR_CRITEO_N_DENSE + CTR_CRITEO_N_CAT];
    if (opt & 0x40) {
        snprintf(prov, sizeof prov,
                 "{\"data\":{\"bags\":[{\"column\":\"%s\",\"sep\":\"%c\",\"max\":%u},"
                 "{\"column\":\"%s\",\"sep\":\"%c\",\"max\":%u}]}}",
                 cat_names[bag_a], sep, max, cat_names[bag_b], sep, max);
        for (size_t k = 0; k < CTR_CRITEO_N_DENSE; k++)
            dd[k].name = csv ? "d" : ctr_criteo_dense_names[k];
        def.n_dense = csv ? 1 : CTR_CRITEO_N_DENSE;
        def.dense = dd;
        def.n_cat = nc;
        def.cat = cd;
        def.provenance_json = prov;
        ctr_data_opts_for_model(&o, &def, names);
    } else {
        o.n_bags = 2;
        o.bags = bags;
    }

    char err[512];
    if (opt & 0x20) {
        ctr_dataset_t ds;
        if (ctr_dataset_load(path, &o, NULL, cd, 1, NULL, &ds, err, sizeof(err)) == 0) {
            if (ds.slots != nc - 2 + 2 * (size_t)max)
                abort();
            for (size_t i = 0; i < ds.n; i++)
                for (size_t j = 0, s = 0; j < nc; s += ctr_features_width(&cd[j]), j++) {
                    const uint32_t *r = ds.rows + i * ds.slots + s;
                    int empty = 0;
                    for (size_t q = 0; q < ctr_features_width(&cd[j]); q++) {
                        if (cd[j].bag_max && r[q] == CTR_EMPTY_SLOT) {
                            empty = 1;
                            continue;
                        }
                        if (empty || r[q] > BUCKETS)
                            abort();
                    }
                }
            ctr_dataset_free(&ds);
        }
        return 0;
    }

    ctr_data_reader_t *r;
    if (ctr_data_open(path, &o, &r, err, sizeof(err)))
        return 0;
    for (int i = 0; i < MAX_ROWS; i++) {
        const ctr_data_row_t *row;
        int rc = ctr_data_next(r, &row, err, sizeof(err));
        if (rc == 0)
            break;
        if (rc == CTR_EFORMAT) {
            if (!err[0])
                abort();
            continue;
        }
        if (rc < 0)
            break;
        check_row(row, nc, seps, maxes);
    }
    ctr_data_close(r);
    return 0;
}
