/* data.h - reading labelled CTR rows from text files, and synthetic rows.
 *
 * Two formats:
 *  - CTR_DATA_CRITEO: Criteo's TSV, no header, 40 tab-separated fields per
 *    line: label, I1..I13 (integers), C1..C26 (categorical strings); an
 *    empty field is a missing value. The columns are addressed by those
 *    names, so a caller may select any subset of them.
 *  - CTR_DATA_CSV: a header row names the columns; the caller names the
 *    label, dense and categorical columns. Fields may be quoted ("a,b",
 *    "" for a quote); a quoted field may not span lines. Empty = missing.
 *
 * Files compressed with xz or gzip (recognised by their magic bytes) are
 * decompressed on the fly by the `xz -dc` / `gzip -dc` program. Lines are
 * read with a bounded buffer; empty lines are ignored; a trailing \r is
 * dropped.
 *
 * Bag columns: a categorical column named in opts.bags holds a list of
 * values separated by one byte (`a|b|c`), at most `max` of them. The list
 * is split after the CSV unquoting, so a quoted field may hold the CSV
 * delimiter as its separator ("a,b,c"). An empty field is an empty bag;
 * an empty element (`a||b`, `a|`, `|a`), more than `max` values, or an
 * element over CTR_MAX_CAT_BYTES make the row bad. A column that is not a
 * bag holds one value (its field whole, separators and all).
 *
 * A bad row (wrong field count, a non-number in a dense column, an
 * over-long categorical value, a bad label, an over-long line, a bad bag) makes
 * ctr_data_next return CTR_EFORMAT with "FILE:LINE: what was wrong" in err;
 * the reader is then positioned at the next line, so a caller may count it
 * and carry on (--skip-bad) or stop. */
#ifndef CTR_DATA_H
#define CTR_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr/model.h"

typedef enum {
    CTR_DATA_CRITEO = 0,
    CTR_DATA_CSV = 1,
} ctr_data_format_t;

#define CTR_DATA_MAX_LINE_DEFAULT (1u << 20)
#define CTR_CRITEO_N_DENSE 13
#define CTR_CRITEO_N_CAT 26

/* Criteo's column names, the one copy: "I1".."I13" and "C1".."C26". */
extern const char *const ctr_criteo_dense_names[CTR_CRITEO_N_DENSE];
extern const char *const ctr_criteo_cat_names[CTR_CRITEO_N_CAT];

/* A categorical column holding a list of values (a bag feature's data). */
typedef struct {
    const char *column;    /* one of the categorical columns (opts.cat) */
    char sep;              /* the byte between values: not NUL, CR, LF or
                              '"'; with criteo not a tab */
    uint32_t max;          /* most values a row may hold, 1..CTR_MAX_BAG */
} ctr_data_bag_t;

typedef struct {
    ctr_data_format_t format;
    const char *label;               /* label column; NULL = "label" */
    int label_optional;              /* 1: rows may lack a label (scoring):
                                        Criteo lines of 39 fields or an empty
                                        label field; a CSV without the column */
    size_t n_dense;                  /* dense columns to read, in this order */
    const char *const *dense;        /* NULL with format criteo: I1..I13 */
    size_t n_cat;                    /* categorical columns, in this order */
    const char *const *cat;          /* NULL with format criteo: C1..C26 */
    char delimiter;                  /* CSV only; 0 = ',' */
    size_t max_line;                 /* bytes; 0 = CTR_DATA_MAX_LINE_DEFAULT */
    size_t n_bags;                   /* bag columns, each named once */
    const ctr_data_bag_t *bags;
    /* Set by ctr_data_opts_for_model: the model's bag features whose
     * separator its provenance records (data.bags, written by ctrtool
     * train --bag) are read as bags of at most bag_max values; a bag
     * feature without a recorded separator reads its field as one value.
     * Columns in bags above take precedence. NULL: none. */
    const ctr_model_def_t *bag_model;
} ctr_data_opts_t;

/* One parsed row; its arrays belong to the reader and are overwritten by
 * the next call. cat[j] points at categorical column j's field (not
 * NUL-terminated; a bag column's whole list), or is NULL when it is
 * empty. val[val_off[j] .. val_off[j+1]) are column j's values: none or
 * one for a plain column (its field), 0..max for a bag, in order. */
typedef struct {
    uint64_t line;        /* 1-based line number in the (decompressed) file */
    int label;            /* 0 or 1; -1 if the row has none (label_optional) */
    const double *dense;  /* [n_dense]; NaN = missing */
    const char *const *cat;
    const size_t *cat_len;
    const size_t *val_off; /* [n_cat + 1] */
    const char *const *val;
    const size_t *val_len;
} ctr_data_row_t;

typedef struct ctr_data_reader ctr_data_reader_t;

/* Opens path ("-" = stdin, plain text only) and, for CSV, reads the header
 * and resolves the column names. On success *out is owned by the caller. */
int ctr_data_open(const char *path, const ctr_data_opts_t *opts,
                  ctr_data_reader_t **out, char *err, size_t errlen);

/* Reads the next row: returns 1 and sets *row, 0 at end of file,
 * CTR_EFORMAT for a bad row (skippable, see above), another negative code
 * for an error that ends reading (I/O, decompressor failure). */
int ctr_data_next(ctr_data_reader_t *r, const ctr_data_row_t **row,
                  char *err, size_t errlen);

/* Closes the file and reaps the decompressor. Safe on NULL. */
void ctr_data_close(ctr_data_reader_t *r);

/* "criteo" / "csv" -> format; -1 if unknown. */
int ctr_data_parse_format(const char *s);
const char *ctr_data_format_name(ctr_data_format_t f);

/* Points opts' column lists at the model's feature names (dense then
 * categorical, in model order), keeping format, label and delimiter, and
 * sets bag_model = def (n_bags 0): bag features are read with the
 * separators the model records. names (caller's, n_dense + n_cat
 * entries) holds the lists; the strings stay in def. */
void ctr_data_opts_for_model(ctr_data_opts_t *opts, const ctr_model_def_t *def,
                             const char **names);

/* Rows held in memory, encoded with a model schema (features.h), the same
 * way the server encodes a request:
 *   dense[i * n_dense + k]  float input of dense feature k
 *   rows[i * slots + s]     row slot s (features.h: categorical feature j's
 *                           slots start at ctr_model_slot_of; slots ==
 *                           n_cat without bags)
 *   labels[i]               0, 1, or 255 when the row has no label.
 * A bag feature's slots hold the rows of its column's values (a bag column
 * of the reader, see opts.bags) in order, the rest CTR_EMPTY_SLOT; a bag
 * feature whose column the reader does not split takes its field as a bag
 * of one, an empty field as an empty bag. raw_dense (double, NaN = missing) is kept only when asked for, so a
 * trainer can compute standardisation statistics before encoding. */
typedef struct {
    size_t n, n_dense, n_cat;
    size_t slots;          /* row slots per example: the stride of rows */
    float *dense;
    uint32_t *rows;
    uint8_t *labels;
    double *raw_dense;
    uint64_t bad_rows;     /* rows skipped as bad (skip_bad) */
} ctr_dataset_t;

#define CTR_DATASET_NO_LABEL 255

/* Loads every row of path. cats (n_cat = opts->n_cat entries) gives the
 * mapping (and bag width) of each categorical column; a value the mapping
 * refuses (`mod` and not hex), or more values than the feature takes (a
 * bag column whose max is over the feature's bag_max, or any bag column
 * read into a single-valued feature), makes the row bad. dense (opts->n_dense
 * entries) the
 * transforms, or NULL to keep raw_dense only (encode later with
 * ctr_dataset_encode_dense). With skip_bad, bad rows are reported on log
 * (if non-NULL, the first few in full) and counted; without it the first
 * one stops loading. On success the caller owns ds (ctr_dataset_free). */
int ctr_dataset_load(const char *path, const ctr_data_opts_t *opts,
                     const ctr_dense_def_t *dense, const ctr_cat_def_t *cats,
                     int skip_bad, FILE *log, ctr_dataset_t *ds,
                     char *err, size_t errlen);

/* Fills ds->dense from ds->raw_dense with the given transforms. */
int ctr_dataset_encode_dense(ctr_dataset_t *ds, const ctr_dense_def_t *dense);

void ctr_dataset_free(ctr_dataset_t *ds);

/* Encodes one parsed row (columns in model order) into the model's inputs:
 * dense[n_dense] floats and rows[ctr_model_slots(def)] row slots. 0, or
 * CTR_EINVAL when a value is one its feature's mapping refuses (`mod`:
 * not 1..16 hex digits) or a column has more values than its feature
 * takes, with err naming the column. */
int ctr_data_encode_row(const ctr_model_def_t *def, const ctr_data_row_t *row,
                        float *dense, uint32_t *rows, char *err, size_t errlen);

/* ---- synthetic data (model/gendata.c) ----
 *
 * Criteo-shaped rows drawn from a hidden model: 13 integer count features
 * and 26 categorical ones whose values follow power laws (vocabularies from
 * a handful to tens of thousands), with Criteo-like missing rates; the
 * click probability is a logistic function of per-value effects, dense
 * effects and a few pairwise interactions. The hidden model depends only on
 * model_seed; the rows on seed, so files with the same model_seed and
 * different seeds are train/test draws of the same task.
 *
 * With bag_features N > 0 the output is a CSV (comma-separated, a header
 * row label,I1..I13,C1..C26,B1..BN) whose bag columns B1..BN each hold
 * 0..max_bag values joined by CTR_GENDATA_BAG_SEP; the sum of the values'
 * hidden effects adds to the logit (read them with --bag Bk:|:max_bag,
 * pooling sum). The Criteo columns of each row stay what they are
 * without bags. */
#define CTR_GENDATA_BAG_SEP '|'
typedef struct {
    uint64_t rows;
    uint64_t seed;        /* rows */
    uint64_t model_seed;  /* hidden model */
    uint32_t bag_features; /* bag columns, 0..64; 0 = Criteo TSV as always */
    uint32_t max_bag;     /* most values in a bag, 1..CTR_MAX_BAG */
} ctr_gendata_opts_t;

typedef struct {
    uint64_t rows, positives;
    double auc;       /* AUC of the hidden model's own probabilities on these
                         rows: what a perfect learner could reach */
    double logloss;   /* its logloss on these rows */
} ctr_gendata_report_t;

/* Writes rows as Criteo TSV to f. */
int ctr_gendata_write(FILE *f, const ctr_gendata_opts_t *o,
                      ctr_gendata_report_t *rep, char *err, size_t errlen);

#endif
