// A store in a scratch folder, for the fuzz targets that import into one
// (tar_import, oci_layout): made afresh every `inputs_per_store` inputs
// (it grows with each), in $TMPDIR, and removed at exit. And the property
// they check of an import that succeeds.
#ifndef OVERTIER_FUZZ_SCRATCH_STORE_H_
#define OVERTIER_FUZZ_SCRATCH_STORE_H_

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "fuzz/fuzz_check.h"
#include "store/fsck.h"
#include "store/store.h"

namespace overtier::fuzz {

class ScratchStore {
 public:
  // The one instance of a target (named for its scratch folder).
  static ScratchStore* Instance(const char* name, int inputs_per_store) {
    static ScratchStore* s = new ScratchStore(name, inputs_per_store);
    return s;
  }

  // The store for the next input.
  Store* Next() {
    if (store_ && inputs_ < per_store_) {
      ++inputs_;
      return store_.get();
    }
    Drop();
    inputs_ = 1;
    dir_ = ScratchDir(name_);
    Status s = Store::Init(dir_ + "/store", StoreInitOptions{}, &store_);
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    FUZZ_CHECK(s.ok(), "a fresh store");
    // Removed by an exit handler registered now, after the statics the
    // store's first opening made (RocksDB's environment), so that it runs
    // before their destructors: not by a static destructor, which would
    // run after theirs.
    static const bool at_exit = std::atexit([] { Instance(nullptr, 0)->Drop(); }) == 0;
    (void)at_exit;
    return store_.get();
  }

  // The scratch folder of the current store (files of the input go here).
  const std::string& dir() const { return dir_; }
  // Inputs given the current store so far, this one included.
  int inputs() const { return inputs_; }

 private:
  ScratchStore(std::string name, int per_store) : name_(std::move(name)), per_store_(per_store) {}

  void Drop() {
    store_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string name_;
  int per_store_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  int inputs_ = 0;
};

// The property of a successful import: `overtier fsck --quick` finds no
// damage in the store (what it finds is printed first).
inline void CheckFsckClean(Store* store) {
  FsckOptions fo;
  fo.quick = true;
  FsckReport report;
  FUZZ_CHECK(RunFsck(store, fo, &report).ok(), "fsck runs");
  for (const FsckIssue& i : report.issues)
    if (i.severity == FsckSeverity::kError)
      std::fprintf(stderr, "fsck: %s: %s\n", i.kind.c_str(), i.message.c_str());
  FUZZ_CHECK(report.errors() == 0, "an imported image passes fsck");
}

}  // namespace overtier::fuzz

#endif  // OVERTIER_FUZZ_SCRATCH_STORE_H_
