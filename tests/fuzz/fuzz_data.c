/* fuzz_data.c - libFuzzer target for the data-file row reader (model/data.c):
 * Criteo TSV and CSV, through ctr_data_open/ctr_data_next and
 * ctr_dataset_load. The first input byte picks the options, the rest is the
 * file, put in a memfd opened by path (/proc/self/fd/N):
 *
 *   bit 0     format: 0 criteo, 1 csv
 *   bit 1     label_optional
 *   bits 2-3  CSV delimiter: ',' ';' '\t' '|'
 *   bits 4-5  max_line: default (1 MiB), 16, 128, 4096 bytes
 *   bit 6     ctr_dataset_load (skip_bad) instead of the row loop
 *   bit 7     a column subset (criteo: I2, I13 dense; C26, C1, I5 as
 *             categorical) instead of every column
 *
 * Files that start with the xz or gzip magic are skipped: the reader hands
 * those to a decompressor process, which is not the code under test. Every
 * row handed out is read whole (its dense values, its categorical bytes) and
 * checked against the reader's contract. Seeds: tests/fuzz/corpus/data/.
 * Build and run: make fuzz. */
#include <fcntl.h>
#include <math.h>
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

static volatile double g_sink;

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
        fd = memfd_create("fuzz.data", MFD_CLOEXEC);
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

    static const char *const csv_dense[] = {"I1", "x y", "z"};
    static const char *const csv_cat[] = {"C1", "c\"q", "I1x"};
    static const char *const tsv_dense[] = {"I2", "I13"};
    static const char *const tsv_cat[] = {"C26", "C1", "I5"};
    static const char delims[] = {',', ';', '\t', '|'};
    static const size_t max_lines[] = {0, 16, 128, 4096};
    ctr_data_opts_t o;
    memset(&o, 0, sizeof(o));
    o.format = (opt & 1) ? CTR_DATA_CSV : CTR_DATA_CRITEO;
    o.label_optional = (opt >> 1) & 1;
    o.delimiter = delims[(opt >> 2) & 3];
    o.max_line = max_lines[(opt >> 4) & 3];
    if (o.format == CTR_DATA_CSV) {
        o.label = (opt & 0x80) ? "y" : NULL;
        o.n_dense = (opt & 0x80) ? 1 : 3;
        o.dense = csv_dense;
        o.n_cat = (opt & 0x80) ? 1 : 3;
        o.cat = csv_cat;
    } else if (opt & 0x80) {
        o.n_dense = 2;
        o.dense = tsv_dense;
        o.n_cat = 3;
        o.cat = tsv_cat;
    }
    char err[512];
    if (opt & 0x40) {
        /* Dense transforms and table hashing as a model would have them. */
        ctr_dense_def_t dd[CTR_CRITEO_N_DENSE];
        ctr_cat_def_t cd[CTR_CRITEO_N_CAT];
        memset(dd, 0, sizeof(dd));
        memset(cd, 0, sizeof(cd));
        for (size_t k = 0; k < CTR_CRITEO_N_DENSE; k++) {
            dd[k].name = "d";
            dd[k].transform = (ctr_transform_t)(k % 3);
            dd[k].mean = 1.0;
            dd[k].std = 2.0;
        }
        for (size_t j = 0; j < CTR_CRITEO_N_CAT; j++) {
            cd[j].name = "c";
            cd[j].buckets = 1000;
            cd[j].dim = 1;
            cd[j].seed = j;
        }
        ctr_dataset_t ds;
        if (ctr_dataset_load(path, &o, (opt & 2) ? NULL : dd, cd, 1, NULL, &ds, err, sizeof(err)) == 0) {
            size_t nd = ds.n_dense, nc = ds.n_cat;
            for (size_t i = 0; i < ds.n; i++) {
                if (ds.labels[i] > 1 && ds.labels[i] != CTR_DATASET_NO_LABEL)
                    abort();
                for (size_t j = 0; j < nc; j++)
                    if (ds.rows[i * nc + j] > 1000)
                        abort();
                for (size_t k = 0; k < nd; k++)
                    g_sink += ds.dense ? ds.dense[i * nd + k] : ds.raw_dense[i * nd + k];
            }
            if (!ds.dense && ds.n && nd && ctr_dataset_encode_dense(&ds, dd))
                abort();
            ctr_dataset_free(&ds);
        }
        return 0;
    }

    ctr_data_reader_t *r;
    if (ctr_data_open(path, &o, &r, err, sizeof(err)))
        return 0;
    size_t nd = o.format == CTR_DATA_CRITEO && !o.dense ? CTR_CRITEO_N_DENSE : o.n_dense;
    size_t nc = o.format == CTR_DATA_CRITEO && !o.cat ? CTR_CRITEO_N_CAT : o.n_cat;
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
        if (row->label < -1 || row->label > 1 || (row->label < 0 && !o.label_optional))
            abort();
        for (size_t k = 0; k < nd; k++)
            if (!isnan(row->dense[k]))
                g_sink += row->dense[k];
        for (size_t j = 0; j < nc; j++) {
            if (row->cat[j] == NULL)
                continue;
            if (row->cat_len[j] == 0 || row->cat_len[j] > CTR_MAX_CAT_BYTES)
                abort();
            g_sink += (unsigned char)row->cat[j][row->cat_len[j] - 1];
        }
    }
    ctr_data_close(r);
    return 0;
}
