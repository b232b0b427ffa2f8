// overtier store init STORE [--volume-set NAME=PATH ...] [--copies N]
//                           [--vv-size BYTES] [--chunk-size BYTES] [--json]
// overtier store add-set STORE NAME=PATH [--copies N]
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "migrate/byte_size.h"
#include "store/rados_volume.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/json_out.h"
#include "tools/progress.h"
#include "tools/shown_name.h"

namespace overtier::cli {

namespace {

// NAME=PATH (or NAME=rados:...) as a set; false (after saying why) if
// malformed. `cmd`: the command, for the message.
bool ParseSetArg(const char* cmd, const std::string& s, VolumeSetConfig* out) {
  size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) {
    std::fprintf(stderr, "overtier: %s: volume set '%s': expected NAME=PATH\n", cmd, s.c_str());
    return false;
  }
  std::string set_path = s.substr(eq + 1);
  // A RADOS spec (rados:POOL?...) is not a path: keep it as given.
  if (set_path[0] != '/' && !IsRadosVolumeSpec(set_path)) {
    // The configuration keeps absolute paths (the store may be opened
    // from anywhere).
    char* cwd = getcwd(nullptr, 0);
    if (cwd != nullptr) {
      set_path = std::string(cwd) + "/" + set_path;
      std::free(cwd);
    }
  }
  *out = VolumeSetConfig{s.substr(0, eq), set_path};
  return true;
}

int AddSet(const std::string& path, const std::string& arg, uint32_t copies) {
  VolumeSetConfig set;
  if (!ParseSetArg("store add-set", arg, &set)) return 2;
  StoreConfig c;
  Status s = Store::AddVolumeSet(path, set, copies, &c);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: store add-set %s: %s\n", MessageSafe(path).c_str(),
                 MessageSafe(s.ToString()).c_str());
    return s.err() == EINVAL ? 2 : 1;
  }
  const VolumeSetConfig& added = c.sets.back();
  std::printf("added volume set %s at %s\n", added.name.c_str(), added.path.c_str());
  std::printf("  volume sets %zu, copies %u\n", c.sets.size(), c.copies);
  return 0;
}

int Init(const std::string& path, const std::vector<std::string>& sets, uint32_t copies,
         const std::string& vv_size, const std::string& chunk_size, bool json) {
  StoreInitOptions o;
  for (const std::string& s : sets) {
    VolumeSetConfig set;
    if (!ParseSetArg("store init: --volume-set", s, &set)) return 2;
    o.sets.push_back(set);
  }
  o.copies = copies;
  if (!vv_size.empty() && !ParseByteSize(vv_size, &o.vv_size)) {
    std::fprintf(stderr, "overtier: store init: --vv-size '%s': not a size (e.g. 256M)\n",
                 vv_size.c_str());
    return 2;
  }
  if (!chunk_size.empty() && !ParseByteSize(chunk_size, &o.chunk_size)) {
    std::fprintf(stderr, "overtier: store init: --chunk-size '%s': not a size (e.g. 256K)\n",
                 chunk_size.c_str());
    return 2;
  }
  std::unique_ptr<Store> store;
  Status s = Store::Init(path, o, &store);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier: store init %s: %s\n", MessageSafe(path).c_str(),
                 MessageSafe(s.ToString()).c_str());
    return s.err() == EINVAL ? 2 : 1;
  }
  const StoreConfig& c = store->config();
  if (json) {
    nlohmann::json j;
    j["store"] = store->path();
    j["id"] = c.id.ToHex();
    j["format"] = c.format_version;
    j["copies"] = c.copies;
    j["vv_size"] = c.vv_size;
    j["chunk_size"] = c.chunk_size;
    j["volume_sets"] = nlohmann::json::array();
    for (const VolumeSetConfig& v : c.sets)
      j["volume_sets"].push_back({{"name", v.name}, {"path", v.path}});
    std::printf("%s\n", JsonText(j, 2).c_str());
    return 0;
  }
  std::printf("created store %s\n", store->path().c_str());
  std::printf("  id          %s\n", c.id.ToHex().c_str());
  std::printf("  catalog     %s/catalog\n", store->path().c_str());
  for (const VolumeSetConfig& v : c.sets)
    std::printf("  volume set  %s at %s\n", v.name.c_str(), v.path.c_str());
  std::printf("  copies      %u\n", c.copies);
  std::printf("  vv size     %s\n", HumanBytes(c.vv_size).c_str());
  std::printf("  chunk size  %s\n", HumanBytes(c.chunk_size).c_str());
  return 0;
}

}  // namespace

int StoreCommand(int argc, char** argv) {
  CLI::App app{"Manage overtier stores", "overtier store"};
  app.require_subcommand(1);
  CLI::App* init = app.add_subcommand("init", "Create a store: catalog and volume sets");
  std::string path, vv_size, chunk_size;
  std::vector<std::string> sets;
  uint32_t copies = 0;
  bool json = false;
  init->add_option("STORE", path, "Directory of the new store (absent or empty)")->required();
  init->add_option("--volume-set", sets,
                   "NAME=PATH: a volume set (folder, possibly on another disk); repeatable. "
                   "Default: one set 'default' in STORE/volumes/default");
  init->add_option("--copies", copies,
                   "Copies of each chunk, each in another set (default: "
                   "min(2, number of sets))");
  init->add_option("--vv-size", vv_size, "Seal size of containers (K/M/G suffixes; default 256M)");
  init->add_option("--chunk-size", chunk_size,
                   "Chunk size: unit of dedup and verification (power of two, default 256K)");
  init->add_flag("--json", json, "Print what was created as JSON");
  CLI::App* add = app.add_subcommand(
      "add-set", "Add a volume set to an existing store (new containers may go to it)");
  std::string add_path, add_set;
  uint32_t add_copies = 0;
  add->add_option("STORE", add_path, "The store")->required();
  add->add_option("SET", add_set, "NAME=PATH or NAME=rados:POOL?... (as for init --volume-set)")
      ->required();
  add->add_option("--copies", add_copies, "Also set the number of copies (default: unchanged)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "overtier store: %s\n", MessageSafe(e.what()).c_str());
    return 2;
  }
  if (add->parsed()) return AddSet(add_path, add_set, add_copies);
  return Init(path, sets, copies, vv_size, chunk_size, json);
}

}  // namespace overtier::cli
