/* score.c - offline scoring (contract in score.h).
 *
 * Examples are cut into chunks of SCORE_CHUNK that threads take from an
 * atomic counter; each thread scores with its own ctr_scratch_t. A score
 * depends only on the model and its example (forward.h), so neither the
 * chunking nor the thread that ran it changes a bit. */
#include "ctr/score.h"

#include <stdlib.h>

#include "ctr/common.h"
#include "ctr/forward.h"
#include "score_int.h"

typedef struct {
    const ctr_model_def_t *def;
    const ctr_kernel_t *k;
    size_t n, nd, nc;
    const float *dense;
    const uint32_t *rows;
    float *scores;
    ctr_scratch_t **scratch;
    size_t next;
    int rc;
} score_ctx_t;

#define SCORE_CHUNK 512

static void score_worker(void *arg, unsigned tid)
{
    score_ctx_t *c = arg;
    for (;;) {
        size_t t = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        size_t i0 = t * SCORE_CHUNK;
        if (i0 >= c->n)
            break;
        size_t m = c->n - i0 < SCORE_CHUNK ? c->n - i0 : SCORE_CHUNK;
        int rc = ctr_forward(c->def, c->k, m, c->dense + i0 * c->nd, c->rows + i0 * c->nc,
                             c->scores + i0, NULL, c->scratch[tid]);
        if (rc)
            __atomic_store_n(&c->rc, rc, __ATOMIC_RELAXED);
    }
}

int ctr__score_pool(const ctr_model_def_t *def, const ctr_kernel_t *k, size_t n,
                    const float *dense, const uint32_t *rows, float *scores,
                    ctr__pool_t *pool)
{
    unsigned nt = ctr__pool_size(pool);
    /* rows is [n][slots] (features.h): a bag has bag_max slots. */
    score_ctx_t c = {def, k, n, def->n_dense, ctr_model_slots(def), dense, rows, scores, NULL, 0, 0};
    if (!(c.scratch = calloc(nt, sizeof(*c.scratch))))
        return CTR_ENOMEM;
    for (unsigned t = 0; t < nt; t++)
        if (ctr_scratch_new(def, SCORE_CHUNK, &c.scratch[t], NULL, 0))
            c.rc = CTR_ENOMEM;
    if (!c.rc)
        ctr__pool_run(pool, score_worker, &c);
    for (unsigned t = 0; t < nt; t++)
        ctr_scratch_free(c.scratch[t]);
    free(c.scratch);
    return c.rc;
}

int ctr_score_dataset(const ctr_model_def_t *def, const ctr_kernel_t *k, size_t n,
                      const float *dense, const uint32_t *rows, float *scores, unsigned threads)
{
    ctr__pool_t *pool;
    int rc = ctr__pool_new(ctr__pool_threads(threads), &pool, NULL, 0);
    if (rc)
        return rc;
    rc = ctr__score_pool(def, k, n, dense, rows, scores, pool);
    ctr__pool_free(pool);
    return rc;
}

int ctr_dataset_load_for_model(const char *path, const ctr_data_opts_t *fmt,
                               const ctr_model_def_t *def, int skip_bad, FILE *log,
                               ctr_dataset_t *ds, char *err, size_t errlen)
{
    const char **names = calloc(def->n_dense + def->n_cat + 1, sizeof(char *));
    if (!names)
        return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
    ctr_data_opts_t o = *fmt;
    ctr_data_opts_for_model(&o, def, names);
    int rc = ctr_dataset_load(path, &o, def->dense, def->cat, skip_bad, log, ds, err, errlen);
    free(names);
    return rc;
}
