// Fuzz target: sealing a container a crashed writer left (store/vv_recovery.h).
//
// After a crash, whatever a writer left on disk (a cut record, a half
// footer, garbage from a torn write) is sealed by SealAfterCrash at the
// next open. It must leave a container that reads, or refuse with
// Corruption and leave it untouched; never crash, and never seal a
// container whose footer then fails. The input is the container's bytes
// (seeds: real ones, fuzz/make_seeds.cc), written as a container file of a
// local volume set in $TMPDIR. Properties: a container recovery accepts
// opens sealed, its footer lists exactly the records recovery found, and a
// second recovery changes nothing; a refused one is left byte for byte.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "fuzz/fuzz_check.h"
#include "fuzz/vv_container.h"
#include "store/local_volume.h"
#include "store/volume.h"
#include "store/vv_reader.h"
#include "store/vv_recovery.h"

namespace {

using overtier::Status;

struct Scratch {
  std::string dir;
  std::unique_ptr<overtier::VolumeSet> set;
  std::string file;  // the container's file
};

Scratch* scratch = nullptr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (scratch == nullptr) {
    scratch = new Scratch;
    scratch->dir = overtier::fuzz::ScratchDir("recovery");
    overtier::LocalVolumeOptions options;
    FUZZ_CHECK(overtier::OpenLocalVolumeSetAt(scratch->dir + "/set", overtier::fuzz::kSetName,
                                              options, &scratch->set)
                   .ok(),
               "a scratch volume set");
    scratch->file = scratch->dir + "/set/" + overtier::LocalPieceName(overtier::fuzz::kVvId, 0);
    std::atexit([] {
      scratch->set.reset();
      std::error_code ec;
      std::filesystem::remove_all(scratch->dir, ec);
    });
  }
  const std::string input(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(scratch->file, std::ios::binary | std::ios::trunc);
    out << input;
    FUZZ_CHECK(out.good(), "the input written as a container");
  }
  overtier::VolumeSet* set = scratch->set.get();
  overtier::RecordList found;
  Status s = overtier::SealAfterCrash(set, overtier::fuzz::kStoreId, overtier::fuzz::kVvId, &found);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a refusal says why");
    FUZZ_CHECK(ReadAll(scratch->file) == input, "a refused container is left as it was");
    return 0;
  }
  std::unique_ptr<overtier::VvReader> reader;
  s = overtier::VvReader::Open(set, overtier::fuzz::kStoreId, overtier::fuzz::kVvId, &reader);
  if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
  FUZZ_CHECK(s.ok(), "a recovered container opens");
  FUZZ_CHECK(reader->sealed(), "a recovered container is sealed");
  overtier::RecordList listed;
  s = reader->ListRecords(&listed);
  if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
  FUZZ_CHECK(s.ok(), "a recovered container's footer reads");
  FUZZ_CHECK(listed.records.size() == found.records.size(), "the footer lists what was found");
  for (size_t i = 0; i < listed.records.size(); i++)
    FUZZ_CHECK(listed.records[i].location == found.records[i].location,
               "the footer lists what was found, where it was found");
  const std::string sealed = ReadAll(scratch->file);
  overtier::RecordList again;
  FUZZ_CHECK(
      overtier::SealAfterCrash(set, overtier::fuzz::kStoreId, overtier::fuzz::kVvId, &again).ok(),
      "a second recovery succeeds");
  FUZZ_CHECK(ReadAll(scratch->file) == sealed, "a second recovery changes nothing");
  return 0;
}
