// Small helpers shared by the test programs that run the overtier binary:
// running a command and capturing its output, finding the binary, polling,
// mount points, whole files, random payloads and substring assertions.
//
// Part of it_harness (tests/integration/meson.build); harness.cc uses them
// too. Nothing here needs root.
#ifndef OVERTIER_TESTS_INTEGRATION_TEST_UTIL_H_
#define OVERTIER_TESTS_INTEGRATION_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace overtier::it {

// The value of an environment variable, def when unset or empty.
std::string EnvOr(const char* name, const std::string& def = "");

// A mkdtemp/mkstemp template for a fresh temp entry named STEM.XXXXXX in
// $TMPDIR (default /tmp): TMPDIR=/mnt/xfs runs the tests on another file
// system.
std::string TempTemplate(const std::string& stem);

// The overtier binary: $OVERTIER_BIN (set by meson), otherwise the build
// tree layout BUILD/tests/X/test -> BUILD/tools/overtier.
std::string OvertierBin();

// Sleeps in steps of `step` until pred() holds or timeout passes; whether
// it held.
template <typename Pred>
bool PollUntil(Pred pred, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// A finished command: rc is its exit status, 128 + N when signal N ended it
// (an alarm after the timeout: 142), -1 when it could not be started.
struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs argv (argv[0] looked up in PATH unless it has a '/'), stdin from
// /dev/null, stdout and stderr apart, as `uid` (and its gid) if not -1,
// killed by SIGALRM after timeout_s.
Result RunArgs(const std::vector<std::string>& args, uid_t uid = static_cast<uid_t>(-1),
               int timeout_s = 120);
// Same, stdout and stderr together into *out; the exit status, -1 if the
// command did not run or did not exit.
int RunCmd(const std::vector<std::string>& args, std::string* out = nullptr, int timeout_s = 60);
// Same, output appended to the file `log` ("": inherited).
int RunLogged(const std::vector<std::string>& args, const std::string& log, int timeout_s = 20);

// `overtier WORDS...` (OvertierBin()), as `uid` if not -1.
Result Cli(std::vector<std::string> words, uid_t uid = static_cast<uid_t>(-1));
// The same with stdout on a terminal (a new pseudo-terminal in raw mode, so
// that "\n" stays "\n"); stderr apart as above.
Result CliOnTerminal(std::vector<std::string> words);
// rc, stdout and stderr of r, for failure messages.
std::string Describe(const Result& r);

// Starts argv (an absolute path) as a child that dies with this process:
// stdin /dev/null, stdout and stderr appended to `log`, `env` ("NAME=VALUE")
// added to the environment, no other descriptors. Its pid, -1 on error.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::string>& env = {});

// Whether path is a mount point (/proc/self/mountinfo).
bool IsMountPoint(const std::string& path);

// The whole file ("" if it cannot be read).
std::string Slurp(const std::string& path);

// The pid holding a flock on `path` (from /proc/locks), -1 if none.
pid_t FlockHolder(const std::string& path);

// n pseudo-random bytes from seed, no chunk repeated (so that dedup within
// a file does not make a test about something else). A longer payload of
// the same seed starts with the shorter one.
std::string Payload(size_t n, uint64_t seed);

// EXPECT_TRUE(Contains(text, part)) prints both when part is missing.
::testing::AssertionResult Contains(const std::string& text, const std::string& part);

}  // namespace overtier::it

#endif  // OVERTIER_TESTS_INTEGRATION_TEST_UTIL_H_
