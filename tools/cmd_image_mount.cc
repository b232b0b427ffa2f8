// overtier image mount [-f] [-d] [--allow-other] STORE NAME MNT
//
// A read-only mount of image NAME (stacked on the images below it): the
// union with lowerdir=image:NAME, store=STORE and no upper, so it behaves
// exactly as the image lower of a read-write mount does. Unmount with
// `fusermount3 -u MNT`.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "src/daemon.h"
#include "tools/cli.h"
#include "tools/shown_name.h"
#include "union/params.h"

namespace overtier::cli {

int ImageMount(int argc, char** argv) {
  CLI::App app{"Mount an image of the store read-only", "overtier image mount"};
  std::string store, name, mnt;
  bool foreground = false, debug = false, allow_other = false;
  app.add_option("STORE", store, "The store")->required();
  app.add_option("NAME", name, "The image (mounted with the images below it)")->required();
  app.add_option("MNT", mnt, "The mount point")->required();
  app.add_flag("-f", foreground, "Stay in the foreground");
  app.add_flag("-d", debug, "Debug output (implies -f)");
  app.add_flag("--allow-other", allow_other, "Let other users see the mount");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "overtier image mount: %s\n", MessageSafe(e.what()).c_str());
    return 2;
  }
  if (name.empty()) {
    std::fprintf(stderr, "overtier image mount: NAME is empty\n");
    return 2;
  }
  Invocation inv;
  inv.opts.lowerdirs = {LowerDir::Image(name)};
  inv.opts.store = store;
  inv.opts.read_only = true;
  inv.opts.allow_other = allow_other;
  inv.opts.fsname = "overtier";
  // An image never changes: the union may cache as long as the image layer.
  inv.opts.timeout = 86400;
  inv.mountpoint = mnt;
  inv.foreground = foreground || debug;
  inv.debug = debug;
  return RunMount(inv);
}

}  // namespace overtier::cli
