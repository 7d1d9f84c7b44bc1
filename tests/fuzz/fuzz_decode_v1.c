/* fuzz_decode_v1.c - libFuzzer target for the /v1/score request decoder
 * (ctr__decode_v1, server/decode_v1.c), differential: every input is also
 * decoded by the jansson reference decoder (tests/decode_ref.c, written
 * from docs/DECODER.md), and the two must agree on accept/reject, on the
 * error (class for broken JSON; name, CTR_E* code, HTTP status, example
 * and feature otherwise) and on every decoded value, bit for bit. A
 * disagreement aborts with both verdicts and the body on stderr.
 *
 * Model and limits are those the seeds assume: 13 dense + 26 categorical
 * features, 64 examples, depth 32. Seeds: tests/fuzz/corpus/decode_v1/.
 * Build and run: make fuzz (docs/RELIABILITY.md). */
#include <stdio.h>
#include <stdlib.h>

#include "../decode_ref.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[1024];
    ref_open_test_model();
    if (!ref_compare(0, (const char *)data, size, why, sizeof(why))) {
        fprintf(stderr, "decode_v1 disagrees with the jansson reference: %s\n", why);
        fprintf(stderr, "body (%zu bytes): %.*s\n", size, (int)(size < 2000 ? size : 2000),
                (const char *)data);
        abort();
    }
    return 0;
}
