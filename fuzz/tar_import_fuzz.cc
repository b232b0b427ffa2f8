// Fuzz target: importing an image from a tar stream (image/import.h).
//
// Image tars come from anywhere (a registry, `docker save`, a colleague's
// laptop): a malformed or hostile one must be refused with a message, or
// imported as something consistent, never crash the importer or leave the
// catalog broken. The input is the tar (or docker-save tar: the importer
// detects which). Property: an import that succeeds leaves a store that
// `overtier fsck --quick` finds no damage in.
//
// One store serves many inputs (an import replaces the image of the last
// one); it is made afresh every kInputsPerStore inputs, in $TMPDIR, and
// removed at exit.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "fuzz/fuzz_check.h"
#include "image/import.h"
#include "store/fsck.h"
#include "store/store.h"

namespace {

constexpr int kInputsPerStore = 200;

struct Scratch;
Scratch* scratch = nullptr;

struct Scratch {
  std::string dir;
  std::unique_ptr<overtier::Store> store;
  int inputs = 0;

  void Drop() {
    store.reset();
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      dir.clear();
    }
  }
  overtier::Store* Get() {
    if (store && inputs++ < kInputsPerStore) return store.get();
    Drop();
    inputs = 1;
    dir = overtier::fuzz::ScratchDir("import");
    overtier::Status s =
        overtier::Store::Init(dir + "/store", overtier::StoreInitOptions{}, &store);
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    FUZZ_CHECK(s.ok(), "a fresh store");
    // Closed by an exit handler registered now, after the statics the
    // store's first opening made (RocksDB's environment), which are
    // destroyed after it: not by a static destructor, which would run
    // after theirs.
    static const bool at_exit = std::atexit([] { scratch->Drop(); }) == 0;
    (void)at_exit;
    return store.get();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (scratch == nullptr) scratch = new Scratch;
  overtier::Store* store = scratch->Get();
  const std::string tar = scratch->dir + "/in.tar";
  {
    std::ofstream out(tar, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    FUZZ_CHECK(out.good(), "the input written to a file");
  }
  overtier::ImportOptions options;
  options.replace = true;
  options.warn = [](const std::string&) {};
  overtier::ImportResult result;
  overtier::Status s = overtier::ImportImage(store, "fuzz", tar, options, &result);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a refused import says why");
    return 0;
  }
  overtier::FsckOptions fo;
  fo.quick = true;
  overtier::FsckReport report;
  FUZZ_CHECK(overtier::RunFsck(store, fo, &report).ok(), "fsck runs");
  for (const overtier::FsckIssue& i : report.issues)
    if (i.severity == overtier::FsckSeverity::kError)
      std::fprintf(stderr, "fsck: %s: %s\n", i.kind.c_str(), i.message.c_str());
  FUZZ_CHECK(report.errors() == 0, "an imported image passes fsck");
  return 0;
}
