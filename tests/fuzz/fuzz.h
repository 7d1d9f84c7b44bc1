/* fuzz.h - what a fuzz target in tests/fuzz/fuzz_<name>.c provides.
 *
 * Each target is built two ways (Makefile, "fuzzing" block):
 *  - with clang -fsanitize=fuzzer,address,undefined into build/fuzz/fuzz_<name>
 *    (`make fuzz`), where libFuzzer's main() drives it;
 *  - with replay.c's main() into $(B)/tests/fuzz_replay_<name>, which runs it
 *    once over every file of tests/fuzz/corpus/<name>/ (tests/test_fuzz_replay.sh,
 *    under ASan+UBSan in `make test`).
 * A target reports a finding by crashing (abort() for a logic failure such
 * as a differential mismatch), so both drivers see it the same way. */
#ifndef CTR_TESTS_FUZZ_H
#define CTR_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional: writes the target's seed inputs into dir (replay --write-seeds);
 * returns the number written, or -1. */
int fuzz_write_seeds(const char *dir);

#endif
