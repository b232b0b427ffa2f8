#include "src/daemon.h"

#include <cstdio>
#include <memory>

#include "src/fuse_ops.h"
#include "union/union_fs.h"

namespace overtier {

int RunMount(const Invocation& inv) {
  Status s = ValidateMountOptions(inv.opts, inv.mountpoint);
  if (!s.ok()) {
    // Invalid-argument messages are whole sentences; the others are context
    // that still needs the errno text.
    const std::string msg = s.err() == EINVAL && !s.message().empty() ? s.message() : s.ToString();
    std::fprintf(stderr, "overtier: %s\n", msg.c_str());
    return 2;
  }
  for (const auto& o : inv.opts.ignored)
    if (inv.debug) std::fprintf(stderr, "overtier: ignoring option '%s'\n", o.c_str());
  std::unique_ptr<UnionFs> fs;
  s = UnionFs::Create(inv.opts, &fs);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s\n", s.ToString().c_str());
    return 2;
  }
  return ServeFuse(fs.get(), inv);
}

}  // namespace overtier
