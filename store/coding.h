// Byte encodings shared by the catalog's keys and values.
//
// Two byte orders, on purpose:
//  - values use little-endian fixed-width integers and LEB128 varints for
//    lengths and counts (LevelDB's convention: cheap to write, compact);
//  - keys use big-endian integers, because RocksDB compares keys as raw bytes
//    and only big-endian makes that comparison agree with numeric order. A
//    prefix scan of (image, parent) then walks one directory, in name order.
//
// Everything that reads bytes (Decoder, Parse*Key) is written for hostile
// input: a damaged catalog must give an error, never a read past the end.
#ifndef OVERTIER_STORE_CODING_H_
#define OVERTIER_STORE_CODING_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "overtier/status.h"

namespace overtier {

// ---------------------------------------------------------------------------
// Appending to a buffer
// ---------------------------------------------------------------------------

void PutU8(std::string* dst, uint8_t v);
void PutFixed32(std::string* dst, uint32_t v);   // 4 bytes, little-endian
void PutFixed64(std::string* dst, uint64_t v);   // 8 bytes, little-endian
void PutVarint32(std::string* dst, uint32_t v);  // LEB128, 1..5 bytes
void PutVarint64(std::string* dst, uint64_t v);  // LEB128, 1..10 bytes
// varint32 length, then the bytes. `v` must be shorter than 4 GiB.
void PutLengthPrefixed(std::string* dst, std::string_view v);
void PutBigEndian64(std::string* dst, uint64_t v);  // 8 bytes, most significant first

// Number of bytes PutVarint64 writes for v.
int VarintLength(uint64_t v);

// Fixed-width writes into, and reads from, a buffer the caller knows is
// long enough (byte-wise: any alignment, any host order).
void EncodeFixed32(char* p, uint32_t v);
void EncodeFixed64(char* p, uint64_t v);
uint32_t DecodeFixed32(const char* p);
uint64_t DecodeFixed64(const char* p);
uint64_t DecodeBigEndian64(const char* p);

// ---------------------------------------------------------------------------
// Reading a buffer
// ---------------------------------------------------------------------------

// Reads an encoded value front to back. Every Get returns false, and consumes
// nothing, when the input does not hold a complete, well-formed item; the
// caller turns that into a Corruption naming what it was reading.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool GetU8(uint8_t* v);
  bool GetFixed32(uint32_t* v);
  bool GetFixed64(uint64_t* v);
  // Rejects overlong encodings (more than 5 or 10 bytes) and, for varint32,
  // values that do not fit in 32 bits.
  bool GetVarint32(uint32_t* v);
  bool GetVarint64(uint64_t* v);
  // The next n bytes, as a view into the input (no copy).
  bool GetBytes(size_t n, std::string_view* v);
  bool GetLengthPrefixed(std::string_view* v);

  size_t remaining() const { return in_.size(); }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// ---------------------------------------------------------------------------
// 128-bit identifiers
// ---------------------------------------------------------------------------

// Sixteen opaque bytes: bfids (the archive identity of a file's content, as
// in DMFS), store ids, XXH3-128 digests. The tag keeps the kinds apart so a
// digest cannot be passed where a bfid is expected. `bytes` is the same
// std::array<uint8_t, 16> the vv container code (vv_format.h) calls Id128,
// so values pass between the two as `Bfid{id}` and `bfid.bytes`.
template <typename Tag>
struct Tagged128 {
  std::array<uint8_t, 16> bytes{};

  bool IsZero() const {
    for (uint8_t b : bytes) {
      if (b != 0) return false;
    }
    return true;
  }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  // 32 lowercase hex digits, for messages and file names.
  std::string ToHex() const;
  // Exactly 16 bytes.
  static bool FromBytes(std::string_view in, Tagged128* out) {
    if (in.size() != 16) return false;
    for (size_t i = 0; i < 16; i++) out->bytes[i] = static_cast<uint8_t>(in[i]);
    return true;
  }
  friend bool operator==(const Tagged128&, const Tagged128&) = default;
  friend auto operator<=>(const Tagged128&, const Tagged128&) = default;
};

struct BfidTag {};
struct StoreIdTag {};
struct DigestTag {};
// Identity of an archived content; the key of the `files` family.
using Bfid = Tagged128<BfidTag>;
using StoreId = Tagged128<StoreIdTag>;
// XXH3-128 of a payload, stored as the vv containers store it (low 64 bits
// little-endian, then high 64 bits little-endian: vv_format.h Hash128Key), so
// an extent's digest is also the key of the chunk record it may point to.
using Digest128 = Tagged128<DigestTag>;

// Lowercase hex of arbitrary bytes ("" for none).
std::string HexString(std::string_view bytes);

// Fills `n` bytes at `p` from the kernel's random source (getrandom(2)).
Status FillRandom(void* p, size_t n);

template <typename Tag>
std::string Tagged128<Tag>::ToHex() const {
  return HexString(view());
}

// A fresh random id (bfids, store ids). 128 random bits make a collision
// between ids of the same store practically impossible without coordination.
template <typename Tag>
Status RandomId(Tagged128<Tag>* out) {
  return FillRandom(out->bytes.data(), out->bytes.size());
}

// ---------------------------------------------------------------------------
// Catalog keys (the layout is in docs/FORMAT.md, "Catalog")
// ---------------------------------------------------------------------------
//
// Key builders do not validate: what is a legal name or id is the catalog's
// business (catalog_records.h), checked before a key is built for a write.
// Parsers check only the shape (lengths), so that a scan over a damaged
// family reports Corruption instead of misreading.

// images: the image name, raw.
inline std::string ImageKey(std::string_view name) { return std::string(name); }
// nodes: be64 image id, be64 inode (16 bytes).
std::string NodeKey(uint64_t image, uint64_t ino);
// The 8-byte prefix of every node (and dirent) of an image.
std::string ImagePrefix(uint64_t image);
// dirents: be64 image id, be64 parent inode, then the name's raw bytes. The
// name is last and unterminated: the fixed 16-byte prefix delimits it, and
// bytewise order of the keys is then name order within a directory.
std::string DirentKey(uint64_t image, uint64_t parent, std::string_view name);
std::string DirentPrefix(uint64_t image, uint64_t parent);  // 16 bytes
// files: the 16 bytes of the bfid.
inline std::string FileKey(const Bfid& bfid) { return std::string(bfid.view()); }
// volumes and jobs: be64 id.
std::string U64Key(uint64_t id);
// migration: the upper file handle's bytes, raw.
inline std::string MigrationKey(std::string_view handle) { return std::string(handle); }

bool ParseNodeKey(std::string_view key, uint64_t* image, uint64_t* ino);
// `name` views into `key`.
bool ParseDirentKey(std::string_view key, uint64_t* image, uint64_t* parent,
                    std::string_view* name);
bool ParseFileKey(std::string_view key, Bfid* bfid);
bool ParseU64Key(std::string_view key, uint64_t* id);

}  // namespace overtier

#endif  // OVERTIER_STORE_CODING_H_
