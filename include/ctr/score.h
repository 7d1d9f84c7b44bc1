/* score.h - offline scoring of a data file with a model: its rows read in
 * the model's schema, then scored through ctr_forward (the server's code
 * path) on several threads. ctrtool eval/pd/score and the trainer's own
 * evaluation use it; a score computed here equals the served one bit for
 * bit, whatever the thread count. */
#ifndef CTR_SCORE_H
#define CTR_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr/data.h"
#include "ctr/kernels.h"
#include "ctr/model.h"

/* Loads path's rows in the columns the model names, encoded with its
 * schema, into ds (the caller frees it with ctr_dataset_free). fmt carries
 * format, label, delimiter and label_optional; its column lists are
 * ignored. skip_bad and log as for ctr_dataset_load. */
int ctr_dataset_load_for_model(const char *path, const ctr_data_opts_t *fmt,
                               const ctr_model_def_t *def, int skip_bad, FILE *log,
                               ctr_dataset_t *ds, char *err, size_t errlen);

/* Scores n encoded examples (dense[n][n_dense], rows[n][slots], slots =
 * ctr_model_slots(def), what ctr_dataset_load_for_model gives) into
 * scores[n] with ctr_forward on `threads` threads (0 = online CPUs, at
 * most 16); the scores do not depend on the thread count. Returns 0 or a
 * CTR_E* code. */
int ctr_score_dataset(const ctr_model_def_t *def, const ctr_kernel_t *k,
                      size_t n, const float *dense, const uint32_t *rows,
                      float *scores, unsigned threads);

#endif
