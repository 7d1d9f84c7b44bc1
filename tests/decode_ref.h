/* decode_ref.h - the jansson reference decoder for the request decoders
 * (server/decode*.c) and the differential check between the two.
 *
 * The reference is written from docs/DECODER.md on top of jansson's tree
 * parser, independently of the single-pass decoder; ref_compare() decodes
 * one body with both and says whether they agree on accept/reject, on the
 * error (its class for broken JSON; the exact name, CTR_E* code, HTTP
 * status, example and feature otherwise) and on every decoded value, bit
 * for bit. Used by
 * tests/test_decode.c and by the differential libFuzzer targets
 * tests/fuzz/fuzz_decode_v1.c and fuzz_decode_v2.c.
 *
 * It knows one schema size and one set of limits, those of the fuzz seed
 * corpora: REF_ND dense and REF_NC categorical features (the test model of
 * test_make_model(path, seed, 13, 26, ...)), at most REF_NS_MAX row slots
 * (the bag model, ref_open_bag_model: some features made bags or `mod`),
 * ref_lim = {64 examples, depth 32}. jansson cannot judge duplicate keys, NUL bytes in keys and
 * integers beyond int64 (it refuses them while parsing); such bodies get
 * the verdicts REF_LIMITED_DUP / REF_LIMITED_INT and only the checks that
 * still make sense. Not thread-safe: one global state. */
#ifndef CTR_TESTS_DECODE_REF_H
#define CTR_TESTS_DECODE_REF_H

#include <stddef.h>
#include <stdint.h>

#include "../server/decode.h"
#include "ctr/features.h"
#include "ctr/model.h"

#define REF_ND 13
#define REF_NC 26
#define REF_NS_MAX 40
#define REF_MAX_EX 64
#define REF_MAX_DEPTH 32

enum { REF_OK, REF_SYNTAX, REF_SEMANTIC, REF_LIMITED_DUP, REF_LIMITED_INT };

/* What the reference made of the last body (ref_run). */
typedef struct {
    int verdict;              /* REF_* */
    const char *name;         /* REF_SEMANTIC: the expected error name */
    int status;               /* and the HTTP status the client gets */
    long example;
    char feature[65];
    size_t n;
    int has_rid;
    char rid[CTR_REQUEST_ID_MAX + 1];
    float dense[REF_MAX_EX * REF_ND];
    double raw[REF_MAX_EX * REF_ND];
    uint32_t rows[REF_MAX_EX * REF_NS_MAX];   /* [n][slots] */
    uint8_t clen[REF_MAX_EX * REF_NS_MAX];
    char cbytes[REF_MAX_EX * REF_NS_MAX][CTR_MAX_CAT_BYTES];
    /* v1 bookkeeping */
    unsigned char ex_has[REF_MAX_EX][REF_ND + REF_NC];
    unsigned char ctx_has[REF_ND + REF_NC];
} ref_t;

/* Verdict counts over every ref_compare() call. */
typedef struct {
    size_t total, ok, syntax, semantic, limited;
} ref_stats_t;

extern ref_t g_ref;
extern ref_stats_t ref_stats;
extern const ctr_decode_limits_t ref_lim;

/* m (borrowed, must outlive every later call) has REF_ND dense and REF_NC
 * categorical features and at most REF_NS_MAX slots; aborts otherwise. */
void ref_init(const ctr_model_t *m);

/* The model the seed corpora assume (test_make_model seed 7, 13 dense and
 * 26 categorical features, 1000 buckets, dim 4), made once in a temporary
 * directory, opened, its file removed; ref_init() is called on it. Owned
 * by decode_ref.c for the life of the process. Aborts on failure. */
const ctr_model_t *ref_open_test_model(void);

/* Another copy of that model with, in memory (the file format of bags is
 * not this file's business): C1 a bag of at most 4 (hash, sum), C2 `mod`,
 * C3 a `mod` bag of at most 3 (mean), C26 a bag of at most 2. 32 slots.
 * ref_init() is called on it, so it becomes the reference's model. */
const ctr_model_t *ref_open_bag_model(void);

/* Makes categorical feature j of m (a model opened by ctr_model_open) a
 * bag of at most bag_max values (0: single-valued) with mapping map, in
 * memory: for tests of the decoders and encoders. */
void ref_patch_feature(const ctr_model_t *m, size_t j, uint32_t bag_max, ctr_pool_t pool,
                       ctr_mapping_t map);

/* The CTR_E* code docs/DECODER.md gives the decoder error called name
 * (0 for a name it does not list). */
int ref_error_code(const char *name);

/* The reference alone: fills g_ref. */
void ref_run(int v2, const char *body, size_t len);

/* Both decoders on body (copied to an exact-size buffer first, so ASan sees
 * any read past len). Returns 1 when they agree; 0 with the difference in
 * why otherwise. */
int ref_compare(int v2, const char *body, size_t len, char *why, size_t whylen);

/* Two decoded requests are the same, bit for bit: counts, id, binary
 * output, encoded and raw values, rows, categorical bytes. */
int ref_same_request(const ctr_request_t *a, const ctr_request_t *b);

/* The binary tensor data checks (tests/fuzz/fuzz_decode_v2_binary.c):
 * data is a 2-byte little-endian Inference-Header-Content-Length then the
 * body, decoded with m. A rejection must have a name, a message and a
 * client status; an accepted request must be accepted again in its JSON
 * form (to_json: dense, sparse, one BYTES input per bag) and decode to
 * the same request. 1 when all holds, else 0 with why. */
int ref_binary_check(const ctr_model_t *m, const uint8_t *data, size_t size, char *why,
                     size_t whylen);

#endif
