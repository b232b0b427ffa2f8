// Fuzz target: the mount command line (union/params.h).
//
// The option string comes from users, from /etc/fstab and from container
// runtimes (containers/storage passes empty options, "volatile",
// uidmapping=...); a bad one must be refused with a message naming it.
// The input is a command line, its arguments separated by NUL bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "union/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  overtier::MountOptions opts;
  overtier::Status s = overtier::ParseMountOptionString(text, &opts);
  if (!s.ok()) FUZZ_CHECK(!s.message().empty(), "a refused option string says why");

  std::vector<std::string> args{"overtier"};
  size_t start = 0;
  for (size_t i = 0; i <= text.size() && args.size() < 64; i++) {
    if (i == text.size() || text[i] == '\0') {
      args.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  overtier::Invocation inv;
  s = overtier::ParseMountCommandLine(static_cast<int>(args.size()), argv.data(), &inv);
  if (!s.ok()) FUZZ_CHECK(!s.message().empty(), "a refused command line says why");
  return 0;
}
