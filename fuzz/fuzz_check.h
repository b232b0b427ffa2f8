// What the fuzz targets share: FUZZ_CHECK, which stops the run (abort, so
// that libFuzzer and the replay driver both report the input) when a
// property of the code under test does not hold. A crash or a sanitizer
// report needs no check: the instrumentation reports it.
#ifndef OVERTIER_FUZZ_FUZZ_CHECK_H_
#define OVERTIER_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: property failed: %s (%s)\n", __FILE__, __LINE__, #cond, what); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

#endif  // OVERTIER_FUZZ_FUZZ_CHECK_H_
