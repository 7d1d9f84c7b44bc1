/* fuzz_decode_bags.c - libFuzzer target for the request decoders on a
 * model with bag and `mod` features (tests/decode_ref.c
 * ref_open_bag_model: C1, C3 and C26 bags, C2 and C3 `mod`).
 *
 * The first byte picks the decoder (its value mod 3: '0' /v1/score, '1'
 * v2 JSON, '2' v2 binary tensor data); the rest is the body, for '2' after
 * a 2-byte little-endian Inference-Header-Content-Length. v1 and v2 JSON
 * are differential against the jansson reference (ref_compare: the same
 * verdict, error, example, feature and every slot, bit for bit); binary
 * bodies go through ref_binary_check (a rejection is the client's fault;
 * an accepted request decodes the same from its JSON form, one input per
 * bag). Limits: 64 examples, depth 32. Seeds: tests/fuzz/corpus/decode_bags/
 * (test_decode --write-corpus). */
#include <stdio.h>
#include <stdlib.h>

#include "../decode_ref.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[1024];
    const ctr_model_t *m = ref_open_bag_model();
    if (size < 1)
        return 0;
    int mode = data[0] % 3, good;
    if (mode == 2)
        good = ref_binary_check(m, data + 1, size - 1, why, sizeof why);
    else
        good = ref_compare(mode, (const char *)data + 1, size - 1, why, sizeof why);
    if (!good) {
        fprintf(stderr, "decode_bags (mode %d): %s\n", mode, why);
        fprintf(stderr, "input (%zu bytes): %.*s\n", size, (int)(size < 2000 ? size : 2000),
                (const char *)data);
        abort();
    }
    return 0;
}
