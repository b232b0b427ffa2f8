// Fuzz target: store.conf (store/store.h, ParseStoreConfig), the one text
// file of a store, written by `overtier store init` and edited by hand when
// a volume set moves.
//
// Properties: a file that does not parse says why (EINVAL, or ENOTSUP for
// a newer format); one that parses is written out by FormatStoreConfig as
// a file that parses to the same configuration (what `store add-set`
// does: read, change, write back), and a copy of that file cut short
// anywhere is refused (a torn write must not pass for a smaller store).
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "store/store.h"

namespace {

bool Same(const overtier::StoreConfig& a, const overtier::StoreConfig& b) {
  if (a.format_version != b.format_version || !(a.id == b.id) || a.copies != b.copies ||
      a.vv_size != b.vv_size || a.chunk_size != b.chunk_size || a.sets.size() != b.sets.size() ||
      a.remote_sets.size() != b.remote_sets.size())
    return false;
  for (size_t i = 0; i < a.sets.size(); ++i)
    if (a.sets[i].name != b.sets[i].name || a.sets[i].path != b.sets[i].path) return false;
  for (size_t i = 0; i < a.remote_sets.size(); ++i) {
    const overtier::RemoteSetConfig& x = a.remote_sets[i];
    const overtier::RemoteSetConfig& y = b.remote_sets[i];
    if (x.name != y.name || !(x.owner == y.owner) || x.origin_set != y.origin_set ||
        x.path != y.path)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  overtier::StoreConfig c;
  overtier::Status s = overtier::ParseStoreConfig(text, &c);
  if (!s.ok()) {
    FUZZ_CHECK(s.err() == EINVAL || s.err() == ENOTSUP, "a bad store.conf is EINVAL or ENOTSUP");
    FUZZ_CHECK(!s.message().empty(), "a refused store.conf says why");
    return 0;
  }
  const std::string out = overtier::FormatStoreConfig(c);
  overtier::StoreConfig back;
  s = overtier::ParseStoreConfig(out, &back);
  if (!s.ok()) std::fprintf(stderr, "%s\n--- written:\n%s", s.ToString().c_str(), out.c_str());
  FUZZ_CHECK(s.ok(), "what FormatStoreConfig writes parses");
  FUZZ_CHECK(Same(c, back), "a store.conf written out reads back the same");
  // Cut short at a point the input picks (its first byte).
  const size_t cut = size > 0 ? data[0] * out.size() / 256 : 0;
  overtier::StoreConfig torn;
  if (cut > 0) {
    FUZZ_CHECK(!overtier::ParseStoreConfig(out.substr(0, cut), &torn).ok(),
               "a store.conf cut short is refused");
  }
  return 0;
}
