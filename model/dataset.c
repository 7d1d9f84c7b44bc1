/* dataset.c - rows held in memory, encoded with a model schema the way
 * the server encodes a request (contract in data.h): one row's encoding,
 * the dense transforms, and loading a whole file through the row reader
 * (data.c), whose bag columns it checks against the schema. */
#include "ctr/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "data_int.h"

/* ---- encoding ---- */

/* Categorical column j's values (none, one, or a bag's) into its
 * feature's slots. Returns 0, or CTR_EINVAL / CTR_ERANGE (see
 * ctr_features_encode_values) with the message in err. */
static int encode_cat(const ctr_cat_def_t *c, const ctr_data_row_t *row, size_t j,
                      uint32_t *slots, char *err, size_t errlen)
{
    size_t a = row->val_off[j], m = row->val_off[j + 1] - a, bad = 0;
    int rc = ctr_features_encode_values(c, row->val + a, row->val_len + a, m, slots, &bad);
    if (rc == CTR_ERANGE)
        return ctr_error(err, errlen, CTR_ERANGE,
                         "line %llu: %s: %zu values, but the feature takes at most %zu",
                         (unsigned long long)row->line, c->name, m, ctr_features_width(c));
    if (rc) {
        char shown[64];
        return ctr_error(err, errlen, CTR_EINVAL,
                         "line %llu: %s: '%s' is not a value of this feature (mapping mod: 1 to "
                         "%d hex digits)",
                         (unsigned long long)row->line, c->name,
                         ctr__data_show(row->val[a + bad], row->val_len[a + bad], shown, sizeof(shown)),
                         CTR_MOD_HEX_MAX);
    }
    return 0;
}

int ctr_data_encode_row(const ctr_model_def_t *def, const ctr_data_row_t *row,
                        float *dense, uint32_t *rows, char *err, size_t errlen)
{
    for (size_t k = 0; k < def->n_dense; k++)
        dense[k] = isnan(row->dense[k]) ? ctr_features_dense_missing(&def->dense[k])
                                        : ctr_features_dense(&def->dense[k], row->dense[k]);
    for (size_t j = 0, s = 0; j < def->n_cat; s += ctr_features_width(&def->cat[j]), j++)
        if (encode_cat(&def->cat[j], row, j, rows + s, err, errlen))
            return CTR_EINVAL;
    return 0;
}

void ctr_dataset_free(ctr_dataset_t *ds)
{
    if (!ds)
        return;
    free(ds->dense);
    free(ds->rows);
    free(ds->labels);
    free(ds->raw_dense);
    memset(ds, 0, sizeof(*ds));
}

static int grow(void **p, size_t n, size_t elem)
{
    size_t bytes = n * elem;
    void *q = realloc(*p, bytes ? bytes : 1);
    if (!q)
        return CTR_ENOMEM;
    *p = q;
    return 0;
}

int ctr_dataset_encode_dense(ctr_dataset_t *ds, const ctr_dense_def_t *dense)
{
    if (!ds->raw_dense && ds->n && ds->n_dense)
        return CTR_EINVAL;
    float *out = malloc(ds->n * ds->n_dense * sizeof(float) + 1);
    if (!out)
        return CTR_ENOMEM;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t k = 0; k < ds->n_dense; k++) {
            double v = ds->raw_dense[i * ds->n_dense + k];
            out[i * ds->n_dense + k] = isnan(v) ? ctr_features_dense_missing(&dense[k])
                                                : ctr_features_dense(&dense[k], v);
        }
    free(ds->dense);
    ds->dense = out;
    return 0;
}

enum { MAX_SHOWN_BAD = 10 };

int ctr_dataset_load(const char *path, const ctr_data_opts_t *o,
                     const ctr_dense_def_t *dense, const ctr_cat_def_t *cats,
                     int skip_bad, FILE *log, ctr_dataset_t *ds, char *err, size_t errlen)
{
    memset(ds, 0, sizeof(*ds));
    ctr_data_reader_t *r;
    int rc = ctr_data_open(path, o, &r, err, errlen);
    if (rc)
        return rc;
    size_t nd = r->n_dense, nc = r->n_cat, cap = 0, ns = 0;
    for (size_t j = 0; j < nc; j++) {
        ns += ctr_features_width(&cats[j]);
        /* A bag column the feature cannot hold would make most rows bad. */
        if (r->bag_sep[j] && r->bag_max[j] > cats[j].bag_max) {
            char takes[32] = "one value";
            if (cats[j].bag_max)
                snprintf(takes, sizeof takes, "at most %u", cats[j].bag_max);
            rc = ctr_error(err, errlen, CTR_EINVAL,
                           "%s: column '%s' is read as a bag of up to %u values, but its feature "
                           "takes %s",
                           path, r->names[nd + j], r->bag_max[j], takes);
            ctr_data_close(r);
            return rc;
        }
    }
    ds->n_dense = nd;
    ds->n_cat = nc;
    ds->slots = ns;
    char msg[512];
    for (;;) {
        const ctr_data_row_t *row;
        rc = ctr_data_next(r, &row, msg, sizeof(msg));
        if (rc == 0)
            break;
        if (rc == CTR_EFORMAT && skip_bad) {
            if (log && ds->bad_rows < MAX_SHOWN_BAD)
                fprintf(log, "skipped: %s\n", msg);
            else if (log && ds->bad_rows == MAX_SHOWN_BAD)
                fprintf(log, "skipped: ... (further bad rows are counted, not shown)\n");
            ds->bad_rows++;
            continue;
        }
        if (rc < 0) {
            ctr_error(err, errlen, rc, "%s", msg);
            goto fail;
        }
        if (ds->n == cap) {
            cap = cap ? cap * 2 : 4096;
            if ((rc = grow((void **)&ds->rows, cap * ns, sizeof(uint32_t))) ||
                (rc = grow((void **)&ds->labels, cap, 1)) ||
                (dense && (rc = grow((void **)&ds->dense, cap * nd, sizeof(float)))) ||
                (!dense && (rc = grow((void **)&ds->raw_dense, cap * nd, sizeof(double))))) {
                ctr_error(err, errlen, rc, "%s: out of memory after %zu rows", path, ds->n);
                goto fail;
            }
        }
        /* The categorical slots first: a value the mapping refuses makes
         * the row bad before anything of it is kept. */
        size_t i = ds->n, bad = nc;
        for (size_t j = 0, s = 0; j < nc && bad == nc; s += ctr_features_width(&cats[j]), j++)
            if ((rc = encode_cat(&cats[j], row, j, ds->rows + i * ns + s, msg, sizeof msg)))
                bad = j;
        if (bad < nc) {
            rc = CTR_EFORMAT;
            if (!skip_bad) {
                ctr_error(err, errlen, rc, "%s: %s", path, msg);
                goto fail;
            }
            if (log && ds->bad_rows < MAX_SHOWN_BAD)
                fprintf(log, "skipped: %s: %s\n", path, msg);
            else if (log && ds->bad_rows == MAX_SHOWN_BAD)
                fprintf(log, "skipped: ... (further bad rows are counted, not shown)\n");
            ds->bad_rows++;
            continue;
        }
        ds->n++;
        for (size_t k = 0; k < nd; k++) {
            double v = row->dense[k];
            if (dense)
                ds->dense[i * nd + k] = isnan(v) ? ctr_features_dense_missing(&dense[k])
                                                 : ctr_features_dense(&dense[k], v);
            else
                ds->raw_dense[i * nd + k] = v;
        }
        ds->labels[i] = row->label < 0 ? CTR_DATASET_NO_LABEL : (uint8_t)row->label;
    }
    if (log && ds->bad_rows)
        fprintf(log, "%s: skipped %llu bad rows, kept %zu\n", path,
                (unsigned long long)ds->bad_rows, ds->n);
    ctr_data_close(r);
    return 0;
fail:
    ctr_data_close(r);
    ctr_dataset_free(ds);
    return rc;
}
