// The overtier command line. Subcommands:
//   overtier mount [-f] [-d] -o OPTIONS MOUNTPOINT
//   overtier [-f] [-d] -o OPTIONS MOUNTPOINT   (mount_program form, as
//                                               containers/storage calls it)
//   overtier --version | --help
#include <cstdio>
#include <cstring>

#include "src/daemon.h"
#include "union/params.h"

namespace {

constexpr const char kUsage[] =
    "usage: overtier mount [-f] [-d] -o lowerdir=L1[:L2...][,upperdir=U,workdir=W][,OPTS] MNT\n"
    "       overtier [-f] [-d] -o OPTIONS MNT     (fuse-overlayfs compatible form)\n"
    "       overtier --version\n"
    "\n"
    "mount options: lowerdir=, upperdir=, workdir=, volatile, ro, allow_other, allow_root,\n"
    "  userxattr, uidmapping=IN:OUT:N[:...], gidmapping=..., timeout=SECS, fsname=NAME,\n"
    "  suid/nosuid, dev/nodev, exec/noexec, noatime\n"
    "  -f  stay in the foreground    -d  debug output (implies -f)\n";

}  // namespace

int main(int argc, char** argv) {
  using overtier::Invocation;
  Invocation inv;
  overtier::Status s = overtier::ParseMountCommandLine(argc, argv, &inv);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s\n%s", s.message().c_str(), kUsage);
    return 2;
  }
  if (inv.show_version) {
    std::printf("overtier version %s\n", OVERTIER_VERSION);
    return 0;
  }
  if (inv.show_help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return overtier::RunMount(inv);
}
