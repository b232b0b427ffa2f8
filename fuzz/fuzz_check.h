// What the fuzz targets share: FUZZ_CHECK, which stops the run (abort, so
// that libFuzzer and the replay driver both report the input) when a
// property of the code under test does not hold (a crash or a sanitizer
// report needs no check: the instrumentation reports it), and ScratchDir.
#ifndef OVERTIER_FUZZ_FUZZ_CHECK_H_
#define OVERTIER_FUZZ_FUZZ_CHECK_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond, what)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: property failed: %s (%s)\n", __FILE__, __LINE__, #cond, what); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace overtier::fuzz {

// A new folder "$TMPDIR/ovt-fuzz-NAME-XXXXXX" for a target's files (a
// store, a volume set); the target removes it at exit.
inline std::string ScratchDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ovt-fuzz-" + name + "-XXXXXX";
  FUZZ_CHECK(mkdtemp(dir.data()) != nullptr, "a scratch folder");
  return dir;
}

}  // namespace overtier::fuzz

#endif  // OVERTIER_FUZZ_FUZZ_CHECK_H_
