// The vv ("virtual volume") container format: the byte layout of the
// container header, record headers, the footer index and the trailer, and
// their encoding and checksums. docs/FORMAT.md ("vv containers") is the
// reference for every offset here; this file is its executable form.
//
// A container is one append-only byte stream:
//
//   [container header, 128 B] then for each record
//   [zero padding][record header, 64 B][payload]
//   and once sealed [zero padding][footer][trailer, 64 B]
//
// Every payload starts on a 4096-byte boundary of the container (so an
// io_uring engine can read it with O_DIRECT) and its header sits in the 64
// bytes just before it, so a record is addressed by its payload offset alone
// (the catalog's extent offset) and header plus payload are one contiguous
// read. A small file therefore costs one 4096-byte block. The footer starts
// where the next record header would. Footer and trailer exist only once the
// container is sealed; without them the records are found by walking the
// headers (see vv_reader.h).
//
// Everything is little-endian. Nothing here does I/O.
#ifndef OVERTIER_STORE_VV_FORMAT_H_
#define OVERTIER_STORE_VV_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"

namespace overtier {

// A 16-byte identifier: store id, bfid, or a content digest.
using Id128 = std::array<uint8_t, 16>;
// 32 lowercase hex digits, byte 0 first.
std::string Id128Hex(const Id128& id);

// An XXH3-128 hash, stored as lo then hi, each little-endian.
struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Hash128&) const = default;
};
Hash128 PayloadHash(std::string_view payload);
// The 16 bytes a Hash128 is stored as (lo LE, hi LE): the key of a chunk
// record whose digest is its payload's XXH3-128.
Id128 Hash128Key(const Hash128& h);
std::string Hash128Hex(const Hash128& h);

// "vv-<16 hex digits>": how a container is named in files and messages.
std::string VvName(uint64_t vv_id);

constexpr uint32_t kVvFormatVersion = 1;
// O_DIRECT alignment of payloads, relative to the start of the container.
constexpr uint64_t kVvAlign = 4096;
constexpr size_t kVvContainerHeaderSize = 128;
constexpr size_t kVvRecordHeaderSize = 64;
constexpr size_t kVvFooterPrefixSize = 24;
constexpr size_t kVvFooterEntrySize = 48;
constexpr size_t kVvFooterChecksumSize = 16;
constexpr size_t kVvTrailerSize = 64;
constexpr size_t kVvMaxSetName = 64;
// The smallest useful seal size: a header block plus one payload block.
constexpr uint64_t kVvMinSealSize = 2 * kVvAlign;
constexpr uint64_t kVvDefaultSealSize = uint64_t{256} << 20;

enum class RecordKind : uint8_t {
  kFileData = 1,   // a range of a file: key = owner bfid, offset = file offset
  kChunk = 2,      // a content chunk: key = its XXH3-128 digest, offset = 0
  kTombstone = 3,  // key = a bfid whose data in this container is dead
};
bool IsKnownRecordKind(uint8_t kind);
const char* RecordKindName(RecordKind kind);

// Where a record lives: what the catalog stores (an extent's vv id, vv
// offset and length). offset is that of the payload, a multiple of 4096; the
// record header is the 64 bytes before it.
struct RecordLocation {
  uint64_t vv_id = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const RecordLocation&) const = default;
};

struct ContainerHeader {
  uint32_t version = kVvFormatVersion;
  Id128 store_id{};
  uint64_t vv_id = 0;
  std::string set_name;  // 1..kVvMaxSetName bytes
};

struct RecordHeader {
  RecordKind kind = RecordKind::kFileData;
  Id128 key{};
  uint64_t logical_offset = 0;
  uint64_t length = 0;  // payload bytes
  Hash128 payload_hash;
};

// What the footer index holds for each record (the record header minus its
// checksums), also what a header scan yields.
struct RecordInfo {
  RecordLocation location;
  RecordKind kind = RecordKind::kFileData;
  Id128 key{};
  uint64_t logical_offset = 0;
};

struct Trailer {
  uint64_t footer_offset = 0;
  uint64_t footer_length = 0;  // prefix + entries + checksum
  uint64_t record_count = 0;
};

// Placement arithmetic.
constexpr uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
// The payload offset of the next record after data ending at end.
constexpr uint64_t NextPayloadOffset(uint64_t end) {
  return AlignUp(end + kVvRecordHeaderSize, kVvAlign);
}
// Where the next record header, or the footer, starts after data ending at
// end: 64 bytes before the next payload offset.
constexpr uint64_t NextHeaderOffset(uint64_t end) {
  return NextPayloadOffset(end) - kVvRecordHeaderSize;
}
// The payload offset of the first record.
constexpr uint64_t kVvFirstPayload = NextPayloadOffset(kVvContainerHeaderSize);
constexpr uint64_t FooterLength(uint64_t records) {
  return kVvFooterPrefixSize + records * kVvFooterEntrySize + kVvFooterChecksumSize;
}

// Encoders write exactly the sizes above into dst. Decoders verify magic,
// checksum and reserved bytes; on failure they return Corruption with a
// message that names the structure and what failed but no container or
// offset, which the caller (who knows them) prefixes.
void EncodeContainerHeader(const ContainerHeader& h, char* dst);
// Checks in order: magic, version (an unknown version is named), checksum.
Status DecodeContainerHeader(const char* src, ContainerHeader* h);

// Record headers, footer and trailer are checksummed with XXH3 seeded with
// the vv id, which binds them to their container: a block from another
// container never passes as one of this one.
void EncodeRecordHeader(const RecordHeader& h, uint64_t vv_id, char* dst);
Status DecodeRecordHeader(const char* src, uint64_t vv_id, RecordHeader* h);
// True if the 8 bytes at src are the footer magic (a header scan meeting it
// has reached a footer whose trailer is missing).
bool IsFooterMagic(const char* src);

// The footer: dst must hold FooterLength(count) bytes.
void EncodeFooter(const RecordInfo* entries, uint64_t count, uint64_t data_end, uint64_t vv_id,
                  char* dst);
// Decodes a footer of len bytes; entries get vv_id in their locations.
// Besides magic and checksum it checks that the entries are in order, at
// possible payload offsets, and end at or before data_end.
Status DecodeFooter(const char* src, uint64_t len, uint64_t vv_id, uint64_t* data_end,
                    std::vector<RecordInfo>* entries);

void EncodeTrailer(const Trailer& t, uint64_t vv_id, char* dst);
// NotFound if there is no trailer magic (the container is not sealed);
// Corruption if the magic is there but the rest is damaged.
Status DecodeTrailer(const char* src, uint64_t vv_id, Trailer* t);

}  // namespace overtier

#endif  // OVERTIER_STORE_VV_FORMAT_H_
