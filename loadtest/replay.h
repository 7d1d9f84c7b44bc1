/* replay.h - logged requests as a ctrload message set (--replay LOG...).
 *
 * A replay source turns one log file into records: the body of a logged
 * /v1/score request and, when the log has it, the time it was received.
 * Sources are a table of callbacks, so a new log format plugs in without
 * touching the rest of ctrload: add a ctr__replay_source_t to the table in
 * replay.c (its sniff() recognises the file from its first bytes).
 *
 * Sources today:
 *   jsonl   JSON lines: one /v1/score body per line, e.g.
 *             {"t_ns": 1700000000123456789, "request_id": "a1", "examples": [{"I1": 3, "C1": "68fd1e64"}]}
 *           "t_ns" (optional, integer nanoseconds on any clock) is taken
 *           out before sending; the rest of the object is the body. A line
 *           may also be a wrapper {"t_ns": ..., "body": {...}}. A line
 *           without "t_ns" is sent byte for byte as written. Empty lines
 *           and lines starting with '#' are skipped.
 *
 * The audit log (docs/AUDIT_LOG.md) is not read directly yet: its writer
 * is being built. `ctrtool audit dump LOG... > requests.jsonl` is meant to
 * produce the JSON-lines form above; a source that reads audit segments
 * in place can be added to the table later. */
#ifndef CTR_LOADTEST_REPLAY_H
#define CTR_LOADTEST_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "bodies.h"

typedef struct {
    uint64_t t_ns;          /* CTR__NO_TIME when the record has none */
    char *body;             /* malloc'd, handed over to the caller */
    size_t len;
    uint32_t n_examples;    /* 0 if unknown */
} ctr__replay_rec_t;

typedef struct {
    const char *name;
    const char *what;
    /* 1 if this source reads a file starting with head[n]. */
    int (*sniff)(const unsigned char *head, size_t n);
    int (*open)(const char *path, void **state, char *err, size_t errlen);
    /* 1 and *rec filled, 0 at end, or a negative CTR_E* code with
     * "FILE:LINE: ..." in err. */
    int (*next)(void *state, ctr__replay_rec_t *rec, char *err, size_t errlen);
    void (*close)(void *state);
} ctr__replay_source_t;

/* Loads every record of paths[n] into a new set, *out (unframed; the
 * caller's: ctr__msgset_free), in file order, or ordered by t_ns across
 * the files when every record has one (stable). format: a source name, or
 * NULL to sniff each file. *all_timed is set to 1 when every record
 * carries t_ns. Returns 0, or a CTR_E* code with a sentence in err and
 * *out = NULL. */
int ctr__replay_load(const char *const *paths, size_t n, const char *format, int *all_timed,
                     ctr__msgset_t **out, char *err, size_t errlen);

#endif
