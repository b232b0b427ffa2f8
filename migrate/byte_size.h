// Sizes in bytes as the command line and the policy rules file write them
// ("4096", "64K", "1M", "12G"): one parser, so that `overtier store init
// --vv-size`, `overtier archive --keep`, `overtier restore --range` and the
// rules of docs/POLICY.md ("size>=1M", "keep=64K") all accept the same
// words.
#ifndef OVERTIER_MIGRATE_BYTE_SIZE_H_
#define OVERTIER_MIGRATE_BYTE_SIZE_H_

#include <cstdint>
#include <string_view>

namespace overtier {

// "4096", "64K", "1M", "2G", "1T", "4KiB", "4KB": a decimal number of
// bytes, optionally with a binary multiple (K, M, G, T, either case) and
// then an optional "B" or "iB". False on anything else (a sign, spaces, a
// fraction, another suffix) and on a value that overflows 64 bits; *out is
// left untouched then.
bool ParseByteSize(std::string_view in, uint64_t* out);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_BYTE_SIZE_H_
