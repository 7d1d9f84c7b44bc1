/* data_int.h - the row reader's state (data.c), which the dataset
 * loader (dataset.c) also reads: the bag columns it was opened with. */
#ifndef CTR_DATA_INT_H
#define CTR_DATA_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "ctr/data.h"

struct ctr_data_reader {
    char *path;
    ctr_data_format_t format;
    char delim;
    int fd;
    pid_t child;           /* decompressor, 0 if none */
    const char *child_name;
    char *buf;             /* cap + 1 bytes: room for a terminating NUL */
    size_t cap, beg, end;
    int eof;
    uint64_t line;

    size_t n_fields;       /* fields per line (CSV: header width) */
    long label_col;        /* -1: no label column */
    int label_optional;
    size_t n_dense, n_cat;
    size_t *dense_col, *cat_col;
    char **names;          /* n_dense + n_cat copies, for messages */

    char **fs;             /* field starts, fcap entries */
    size_t *fl;            /* field lengths */
    size_t fcap;

    double *dense;
    const char **cat;
    size_t *cat_len;
    char *bag_sep;         /* [n_cat]: 0 = one value; else the separator */
    uint32_t *bag_max;     /* [n_cat]: a bag's most values */
    size_t *val_off;       /* [n_cat + 1] */
    const char **val;      /* sum of max(1, bag_max[j]) entries */
    size_t *val_len;
    ctr_data_row_t row;
};

/* Shows a field in a message: at most 40 bytes, non-printables as '?'. */
static inline const char *ctr__data_show(const char *s, size_t len, char *buf, size_t cap)
{
    size_t n = len < 40 ? len : 40, k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        buf[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (len > n && k + 4 < cap) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

#endif
