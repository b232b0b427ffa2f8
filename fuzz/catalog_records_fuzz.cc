// Fuzz target: the catalog's record decoders (store/catalog_records.h).
//
// The catalog is a RocksDB database on the user's disk: a damaged or
// hand-edited row must give Corruption, never a crash or a record that
// breaks the invariants the rest of the code relies on. The first byte
// picks the record type, the rest is the row's value. Properties: a row
// that decodes passes CheckRecord, and its encoding decodes to the same
// record (what the catalog writes back is what it read).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "store/catalog_records.h"

namespace {

template <typename R>
void Check(std::string_view in) {
  R rec;
  overtier::Status s = overtier::DecodeRecord(in, &rec);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a decoding error says what is wrong");
    return;
  }
  FUZZ_CHECK(overtier::CheckRecord(rec).ok(), "a decoded record passes CheckRecord");
  const std::string again = overtier::EncodeRecord(rec);
  R back;
  FUZZ_CHECK(overtier::DecodeRecord(again, &back).ok(), "a record's encoding decodes");
  FUZZ_CHECK(back == rec, "a record's encoding decodes to the same record");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  // (A meta row of a newer format version is ENOTSUP, with a message.)
  switch (data[0] % 9) {
    case 0:
      Check<overtier::CatalogMeta>(in);
      break;
    case 1:
      Check<overtier::ImageRecord>(in);
      break;
    case 2:
      Check<overtier::NodeRecord>(in);
      break;
    case 3:
      Check<overtier::DirentRecord>(in);
      break;
    case 4:
      Check<overtier::FileRecord>(in);
      break;
    case 5:
      Check<overtier::ChunkRecord>(in);
      break;
    case 6:
      Check<overtier::VolumeRecord>(in);
      break;
    case 7:
      Check<overtier::MigrationRecord>(in);
      break;
    case 8:
      Check<overtier::JobRecord>(in);
      break;
  }
  return 0;
}
