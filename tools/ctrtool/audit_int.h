/* audit_int.h - what the ctrtool audit subcommands share: the segment
 * files of the LOG arguments, one walk over their records, JSON strings,
 * the models records are matched with by digest, and re-scoring a record
 * (cmd_audit.c). dump lives in cmd_audit_dump.c, verify in cmd_audit.c,
 * pd (and pd --shadow) in cmd_audit_pd.c. */
#ifndef CTRTOOL_AUDIT_INT_H
#define CTRTOOL_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctr/audit.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "ctr/opts.h"

/* As many models as one ctrd serves (server/registry.h CTR__MODELS_MAX):
 * a log of a full server is verified, dumped or filtered in one run. */
#define CTR__AUDIT_MODELS_MAX 16

/* Segment paths, owned. */
typedef struct {
    char **v;
    size_t n, cap;
} audit_files_t;

typedef struct {
    uint64_t files, records, examples, corrupt, torn, unreadable, header_bad;
} audit_totals_t;

/* One pass over the segments: the callbacks see each segment header,
 * record and damaged span in file order; t counts them. */
typedef struct audit_walker audit_walker_t;
struct audit_walker {
    const char *cmd;
    int verbose_events;           /* print CORRUPT/TORN on stderr */
    void (*on_segment)(audit_walker_t *w, const char *path, const ctr_audit_reader_t *r);
    void (*on_record)(audit_walker_t *w, const char *path, const ctr_audit_record_t *rec);
    void (*on_event)(audit_walker_t *w, const char *path, ctr_audit_event_t ev, const ctr_audit_span_t *s);
    void *ctx;
    audit_totals_t t;
};

/* A model file opened to name or re-score the records of its digest. */
typedef struct audit_model audit_model_t;
struct audit_model {
    const char *path;
    const char *name;             /* dump --requests: the served name ("model") */
    ctr_model_t *m;
    const ctr_model_def_t *def;
    uint8_t digest[32];
    ctr_scratch_t *scratch;
    uint64_t records, examples;
};

void ctr__audit_files_free(audit_files_t *l);

/* l->v gets room for the argc LOG arguments (as many as given); -1 when
 * out of memory. */
int ctr__audit_logs_init(ctr_opt_list_t *l, int argc);

/* Each LOG argument, a directory expanded to its *.audit segments by
 * name. 0, or 1 when one could not be read (reported, "ctrtool audit CMD:"). */
int ctr__audit_expand_all(const char *cmd, const ctr_opt_list_t *logs, audit_files_t *files);

void ctr__audit_walk(audit_walker_t *w, const audit_files_t *files);

/* s as a JSON string: valid UTF-8 as it is, other bytes as \u00XX. */
void ctr__audit_json_str(FILE *f, const char *s, size_t n);

/* Opens path into *s (name NULL). 0, or -1 after saying why on stderr;
 * s is then safe to unload. */
int ctr__audit_model_load(const char *cmd, const char *path, audit_model_t *s);
void ctr__audit_model_unload(audit_model_t *s);

/* Re-scoring a record's logged raw values with a model, as ctrd encoded
 * them (features.h); buffers grown to the largest record seen. */
typedef struct {
    const ctr_kernel_t *kernel;
    float *dense;
    uint32_t *rows;
    float *scores;                /* [rec->n] after ctr__audit_rescore */
    size_t cap;                   /* examples the buffers hold */
} audit_rescore_t;

/* Scores rec's logged inputs with def into rs->scores. 0, or CTR_EFORMAT
 * (another schema, a value the mapping refuses), CTR_ENOMEM, or
 * ctr_forward's error. */
int ctr__audit_rescore(audit_rescore_t *rs, const ctr_model_def_t *def, ctr_scratch_t *scratch,
                       const ctr_audit_record_t *rec);
void ctr__audit_rescore_free(audit_rescore_t *rs);

/* ,"key":v with NaN (nothing compared) as null: JSON has no NaN. */
void ctr__audit_json_ratio(const char *key, double v);

int ctr__cmd_audit_dump(int argc, char **argv);   /* cmd_audit_dump.c */
int ctr__cmd_audit_pd(int argc, char **argv);     /* cmd_audit_pd.c */

#endif
