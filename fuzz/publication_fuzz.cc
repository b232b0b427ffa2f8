// Fuzz target: the manifest of a published image (store/publication_format.h).
//
// Publications are objects another store wrote to a shared volume set;
// this store reads them without trusting them. The first byte gives the
// number of pieces (1..4) the rest is cut into. Properties: a manifest
// that decodes encodes again, in any piece size, to one that decodes to
// the same publication; a piece count from piece 0 is at least 1.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "store/publication_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t n = data[0] % 4 + 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> pieces;
  const size_t each = (body.size() + n - 1) / n;
  for (size_t i = 0; i < n; i++) {
    const size_t at = std::min(body.size(), i * each);
    pieces.push_back(body.substr(at, each));
  }
  uint32_t count = 0;
  if (overtier::PublicationPieceCount(pieces[0], &count).ok())
    FUZZ_CHECK(count >= 1, "a manifest has at least one piece");
  overtier::Publication p;
  if (!overtier::DecodePublication(pieces, &p).ok()) return 0;
  std::vector<std::string> again;
  FUZZ_CHECK(overtier::EncodePublication(p, 4096, &again).ok(), "a decoded manifest encodes");
  overtier::Publication back;
  FUZZ_CHECK(overtier::DecodePublication(again, &back).ok(), "its encoding decodes");
  FUZZ_CHECK(back == p, "to the same publication");
  return 0;
}
