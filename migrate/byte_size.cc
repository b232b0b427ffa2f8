#include "migrate/byte_size.h"

#include <charconv>

namespace overtier {

bool ParseByteSize(std::string_view in, uint64_t* out) {
  // from_chars takes no sign and no leading space, and fails on overflow.
  uint64_t v;
  auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
  if (ec != std::errc() || end == in.data()) return false;
  in.remove_prefix(end - in.data());
  int shift = 0;
  if (!in.empty()) {
    switch (in[0]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        return false;
    }
    in.remove_prefix(1);
    if (!in.empty() && in != "B" && in != "iB") return false;
  }
  if (shift > 0 && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

}  // namespace overtier
