/* fuzz_decode_v2_binary.c - libFuzzer target for Triton's binary tensor
 * data on v2 infer (ctr__decode_v2_binary, server/decode_v2.c).
 *
 * Input: the first 2 bytes (little-endian) are the request's
 * Inference-Header-Content-Length, the rest is the body, so the header
 * length may run past the body as a hostile client's can. Checks:
 *  - a rejection has a name, a message and a client status (400 or 413),
 *    never a 500 (internal_error: the fast pass and the validator disagree);
 *  - an accepted request is re-encoded as its JSON form (dense values
 *    %.17g or null, categorical values as strings or null, the id, the
 *    binary_data output flag) and decoded by ctr__decode_v2: it must be
 *    accepted and decode to the same request, bit for bit (encoded and raw
 *    values, rows, categorical bytes, id, binary output). This is the
 *    contract: a binary request is its JSON form, value for value.
 *
 * Model and limits are those of the decode_v2 target (13 dense + 26
 * categorical features, 64 examples, depth 32). The checks are
 * ref_binary_check (tests/decode_ref.c), which fuzz_decode_bags.c also
 * runs on a model with bags. Seeds: tests/fuzz/corpus/decode_v2_binary/
 * (tests/binary_v2.py seeds DIR). */
#include <stdio.h>
#include <stdlib.h>

#include "../decode_ref.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    if (!ref_binary_check(ref_open_test_model(), data, size, why, sizeof why)) {
        fprintf(stderr, "decode_v2_binary: %s\n", why);
        fprintf(stderr, "input (%zu bytes): ", size);
        for (size_t i = 0; i < size && i < 600; i++)
            fprintf(stderr, "%02x", data[i]);
        fprintf(stderr, "\n");
        abort();
    }
    return 0;
}
