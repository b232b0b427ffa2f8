// The overtier command line. Subcommands:
//   overtier mount [-f] [-d] -o OPTIONS MOUNTPOINT
//   overtier [-f] [-d] -o OPTIONS MOUNTPOINT   (mount_program form, as
//                                               containers/storage calls it)
//   overtier store|image|gc|fsck ...           (the store, tools/cli.h)
//   overtier archive|release|restore|status|ls (the migration tier)
//   overtier policy run|check                  (its policy engine)
//   overtier --version | --help
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string_view>

#include "overtier/printable.h"
#include "src/daemon.h"
#include "tools/cli.h"
#include "union/params.h"

namespace {

constexpr const char kUsage[] =
    "usage: overtier mount [-f] [-d] -o lowerdir=L1[:L2...][,upperdir=U,workdir=W][,OPTS] MNT\n"
    "       overtier [-f] [-d] -o OPTIONS MNT     (fuse-overlayfs compatible form)\n"
    "       overtier store init STORE [--volume-set NAME=PATH ...] [--copies N] [--vv-size B]\n"
    "       overtier image import|export|commit|ls|inspect|rm|mount|push|pull STORE ...\n"
    "       overtier gc STORE | overtier fsck STORE\n"
    "       overtier archive [--release [--keep BYTES]] [-r] PATH...\n"
    "       overtier release [--keep BYTES] [-r] PATH...\n"
    "       overtier restore [--range START-END] [--wait] [-r] PATH...\n"
    "       overtier status [--json] [--store STORE] [-r] PATH...\n"
    "       overtier ls [-l] [-a] [-r] [PATH...]\n"
    "       overtier policy run|check --rules FILE DIR [--dry-run] [--json]\n"
    "       overtier --version\n"
    "\n"
    "mount options: lowerdir=, upperdir=, workdir=, volatile, ro,\n"
    "  allow_other (the default as root), noallow_other, allow_root,\n"
    "  userxattr, uidmapping=DISK:MOUNT:N[:...], gidmapping=..., squash_to_uid=, squash_to_gid=,\n"
    "  squash_to_root, timeout=SECS, fsname=NAME,\n"
    "  suid/nosuid, dev/nodev, exec/noexec, noatime, store=STORE,\n"
    "  policy=RULES, policy_interval=SECS (with store=; docs/POLICY.md),\n"
    "  noacl (POSIX ACLs stored but not enforced), log=FILE (else syslog, when daemonized),\n"
    "  hard/soft, restore=whole|ondemand, lazy_copyup=on|off, restore_clone=on|off\n"
    "  (with store=)\n"
    "  -f  stay in the foreground    -d  debug output (implies -f)\n"
    "Each subcommand has --help.\n";

// "overtier image import ..." -> the function and the arguments after
// "import" (argv[0] becomes "overtier image import" for messages).
int Dispatch(int argc, char** argv, int* status) {
  using namespace overtier::cli;
  if (argc < 2) return 0;
  std::string_view group = argv[1];
  struct Sub {
    const char* name;
    int (*fn)(int, char**);
  };
  static const Sub kImage[] = {
      {"import", ImageImport}, {"export", ImageExport},   {"commit", ImageCommit},
      {"ls", ImageLs},         {"inspect", ImageInspect}, {"rm", ImageRm},
      {"mount", ImageMount},   {"push", ImagePush},       {"pull", ImagePull}};
  if (group == "store") {
    *status = StoreCommand(argc - 1, argv + 1);
    return 1;
  }
  if (group == "gc") {
    *status = Gc(argc - 1, argv + 1);
    return 1;
  }
  if (group == "fsck") {
    *status = Fsck(argc - 1, argv + 1);
    return 1;
  }
  if (group == "policy") {
    *status = PolicyCommand(argc - 1, argv + 1);
    return 1;
  }
  static const Sub kMigrate[] = {{"archive", MigArchive},
                                 {"release", MigRelease},
                                 {"restore", MigRestore},
                                 {"status", MigStatus},
                                 {"ls", MigLs}};
  for (const Sub& s : kMigrate) {
    if (group == s.name) {
      *status = s.fn(argc - 1, argv + 1);
      return 1;
    }
  }
  if (group != "image") return 0;
  if (argc < 3) {
    std::fprintf(stderr,
                 "overtier image: missing subcommand (import, export, commit, ls, "
                 "inspect, rm, mount, push, pull)\n");
    *status = 2;
    return 1;
  }
  for (const Sub& s : kImage) {
    if (std::strcmp(argv[2], s.name) == 0) {
      *status = s.fn(argc - 2, argv + 2);
      return 1;
    }
  }
  std::fprintf(stderr, "overtier image: unknown subcommand '%s'\n",
               overtier::MessageSafe(argv[2]).c_str());
  *status = 2;
  return 1;
}

// `overtier statsu f`: a first word that is no command, no option and no
// directory, on a command line without -o, is a command mistyped; the
// mount parser would only say that lowerdir= is missing.
bool LooksLikeAMistypedCommand(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-' || std::strchr(argv[1], '/') != nullptr ||
      std::strcmp(argv[1], "mount") == 0)
    return false;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "-o", 2) == 0 || std::strcmp(argv[i], "--options") == 0) return false;
  struct stat st;
  return stat(argv[1], &st) != 0 || !S_ISDIR(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  int status = 0;
  if (Dispatch(argc, argv, &status)) return status;

  if (LooksLikeAMistypedCommand(argc, argv)) {
    std::fprintf(stderr,
                 "overtier: unknown command '%s' (commands: mount, store, image, gc, fsck, "
                 "archive, release, restore, status, ls, policy; a mount needs -o lowerdir=...)\n",
                 overtier::MessageSafe(argv[1]).c_str());
    return 2;
  }
  using overtier::Invocation;
  Invocation inv;
  overtier::Status s = overtier::ParseMountCommandLine(argc, argv, &inv);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: %s\n%s", overtier::MessageSafe(s.message()).c_str(), kUsage);
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
