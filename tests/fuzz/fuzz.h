/* capstan fuzz targets: what every target shares.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize);
 * libFuzzer calls it (-DFUZZ=ON), or replay.c does, once per corpus file (the ctest tests
 * fuzz.<name>). A target must not leak, must not keep state between inputs (beyond caches
 * made once) and aborts with FUZZ_CHECK when an invariant of the code under test breaks. */
#ifndef CAPSTAN_TESTS_FUZZ_H
#define CAPSTAN_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: abort (a finding) when it does not hold. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
