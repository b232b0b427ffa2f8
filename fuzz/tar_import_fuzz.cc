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
// one): fuzz/scratch_store.h.
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
#include "fuzz/scratch_store.h"
#include "image/import.h"
#include "store/store.h"

namespace {

constexpr int kInputsPerStore = 200;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto* scratch = overtier::fuzz::ScratchStore::Instance("import", kInputsPerStore);
  overtier::Store* store = scratch->Next();
  const std::string tar = scratch->dir() + "/in.tar";
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
  overtier::fuzz::CheckFsckClean(store);
  return 0;
}
