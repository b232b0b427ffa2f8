#include "store/vv_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "store/coding.h"

namespace overtier {

namespace {

// Magic numbers are ASCII so that a hex dump of a container is readable.
constexpr char kContainerMagic[8] = {'O', 'V', 'T', 'I', 'E', 'R', 'V', 'V'};
constexpr char kRecordMagic[4] = {'V', 'V', 'R', 'C'};
constexpr char kFooterMagic[8] = {'V', 'V', 'F', 'O', 'O', 'T', 'E', 'R'};
constexpr char kTrailerMagic[8] = {'V', 'V', 'T', 'R', 'A', 'I', 'L', 'R'};

// Byte-wise little-endian coding (store/coding.h): independent of host
// order and of alignment (the decoders read from arbitrary offsets of I/O
// buffers).
inline void Put32(char* p, uint32_t v) { EncodeFixed32(p, v); }
inline void Put64(char* p, uint64_t v) { EncodeFixed64(p, v); }
inline uint32_t Get32(const char* p) { return DecodeFixed32(p); }
inline uint64_t Get64(const char* p) { return DecodeFixed64(p); }

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

std::string Hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

Status ChecksumMismatch(const char* what, uint64_t stored, uint64_t computed) {
  return Status::Corruption(std::string(what) + " checksum mismatch (stored " + Hex64(stored) +
                            ", computed " + Hex64(computed) + ")");
}

// Container header field offsets (see docs/FORMAT.md).
constexpr size_t kHdrVersion = 8, kHdrLength = 12, kHdrStoreId = 16, kHdrVvId = 32, kHdrSetLen = 40,
                 kHdrSetName = 48, kHdrChecksum = 120;
// Record header field offsets.
constexpr size_t kRecKind = 4, kRecLogical = 8, kRecLength = 16, kRecKey = 24, kRecHash = 40,
                 kRecChecksum = 56;
// Footer entry field offsets.
constexpr size_t kEntPayload = 0, kEntLength = 8, kEntLogical = 16, kEntKey = 24, kEntKind = 40;
// Trailer field offsets.
constexpr size_t kTrlFooterOffset = 8, kTrlFooterLength = 16, kTrlCount = 24, kTrlChecksum = 56;

}  // namespace

std::string Id128Hex(const Id128& id) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : id) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

Hash128 PayloadHash(std::string_view payload) {
  XXH128_hash_t h = XXH3_128bits(payload.data(), payload.size());
  return Hash128{h.low64, h.high64};
}

Id128 Hash128Key(const Hash128& h) {
  char buf[16];
  Put64(buf, h.lo);
  Put64(buf + 8, h.hi);
  Id128 id;
  std::memcpy(id.data(), buf, 16);
  return id;
}

std::string Hash128Hex(const Hash128& h) { return Hex64(h.hi) + Hex64(h.lo); }

std::string VvName(uint64_t vv_id) { return "vv-" + Hex64(vv_id); }

bool IsKnownRecordKind(uint8_t kind) {
  return kind >= static_cast<uint8_t>(RecordKind::kFileData) &&
         kind <= static_cast<uint8_t>(RecordKind::kTombstone);
}

const char* RecordKindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kFileData:
      return "file-data";
    case RecordKind::kChunk:
      return "chunk";
    case RecordKind::kTombstone:
      return "tombstone";
  }
  return "unknown";
}

// --- container header ---

void EncodeContainerHeader(const ContainerHeader& h, char* dst) {
  std::memset(dst, 0, kVvContainerHeaderSize);
  std::memcpy(dst, kContainerMagic, 8);
  Put32(dst + kHdrVersion, h.version);
  Put32(dst + kHdrLength, kVvContainerHeaderSize);
  std::memcpy(dst + kHdrStoreId, h.store_id.data(), 16);
  Put64(dst + kHdrVvId, h.vv_id);
  size_t n = std::min(h.set_name.size(), kVvMaxSetName);
  dst[kHdrSetLen] = static_cast<char>(n);
  std::memcpy(dst + kHdrSetName, h.set_name.data(), n);
  Put64(dst + kHdrChecksum, XXH3_64bits(dst, kHdrChecksum));
}

Status DecodeContainerHeader(const char* src, ContainerHeader* h) {
  if (std::memcmp(src, kContainerMagic, 8) != 0)
    return Status::Corruption("not a vv container (bad magic in the container header)");
  // The version comes before the checksum: a newer writer may have changed
  // what the checksum covers, and "unknown version" is the useful message.
  uint32_t version = Get32(src + kHdrVersion);
  if (version != kVvFormatVersion)
    return Status::Corruption("unknown vv format version " + std::to_string(version) +
                              " (this build reads version " + std::to_string(kVvFormatVersion) +
                              ")");
  uint64_t stored = Get64(src + kHdrChecksum);
  uint64_t computed = XXH3_64bits(src, kHdrChecksum);
  if (stored != computed) return ChecksumMismatch("container header", stored, computed);
  uint32_t length = Get32(src + kHdrLength);
  uint8_t set_len = static_cast<uint8_t>(src[kHdrSetLen]);
  if (length != kVvContainerHeaderSize || set_len == 0 || set_len > kVvMaxSetName ||
      !AllZero(src + kHdrSetLen + 1, kHdrSetName - kHdrSetLen - 1) ||
      !AllZero(src + kHdrSetName + set_len, kHdrChecksum - kHdrSetName - set_len))
    return Status::Corruption("container header has invalid fields");
  h->version = version;
  std::memcpy(h->store_id.data(), src + kHdrStoreId, 16);
  h->vv_id = Get64(src + kHdrVvId);
  h->set_name.assign(src + kHdrSetName, set_len);
  return Status::OK();
}

// --- record header ---

void EncodeRecordHeader(const RecordHeader& h, uint64_t vv_id, char* dst) {
  std::memset(dst, 0, kVvRecordHeaderSize);
  std::memcpy(dst, kRecordMagic, 4);
  dst[kRecKind] = static_cast<char>(h.kind);
  Put64(dst + kRecLogical, h.logical_offset);
  Put64(dst + kRecLength, h.length);
  std::memcpy(dst + kRecKey, h.key.data(), 16);
  Put64(dst + kRecHash, h.payload_hash.lo);
  Put64(dst + kRecHash + 8, h.payload_hash.hi);
  Put64(dst + kRecChecksum, XXH3_64bits_withSeed(dst, kRecChecksum, vv_id));
}

Status DecodeRecordHeader(const char* src, uint64_t vv_id, RecordHeader* h) {
  if (std::memcmp(src, kRecordMagic, 4) != 0) {
    if (AllZero(src, kVvRecordHeaderSize))
      return Status::Corruption("record header is all zero bytes (never written)");
    return Status::Corruption("bad record header magic");
  }
  uint64_t stored = Get64(src + kRecChecksum);
  uint64_t computed = XXH3_64bits_withSeed(src, kRecChecksum, vv_id);
  if (stored != computed) return ChecksumMismatch("record header", stored, computed);
  uint8_t kind = static_cast<uint8_t>(src[kRecKind]);
  if (!IsKnownRecordKind(kind))
    return Status::Corruption("record header has unknown kind " + std::to_string(kind));
  if (!AllZero(src + kRecKind + 1, kRecLogical - kRecKind - 1))
    return Status::Corruption("record header has non-zero reserved bytes");
  h->kind = static_cast<RecordKind>(kind);
  h->logical_offset = Get64(src + kRecLogical);
  h->length = Get64(src + kRecLength);
  std::memcpy(h->key.data(), src + kRecKey, 16);
  h->payload_hash.lo = Get64(src + kRecHash);
  h->payload_hash.hi = Get64(src + kRecHash + 8);
  // A length that cannot fit any container (offsets would overflow) is
  // damage that happened to pass the checksum: refuse it here once.
  if (h->length > (uint64_t{1} << 62))
    return Status::Corruption("record header has an impossible length " +
                              std::to_string(h->length));
  return Status::OK();
}

bool IsFooterMagic(const char* src) { return std::memcmp(src, kFooterMagic, 8) == 0; }

// --- footer ---

void EncodeFooter(const RecordInfo* entries, uint64_t count, uint64_t data_end, uint64_t vv_id,
                  char* dst) {
  uint64_t body = FooterLength(count) - kVvFooterChecksumSize;
  std::memset(dst, 0, FooterLength(count));
  std::memcpy(dst, kFooterMagic, 8);
  Put64(dst + 8, count);
  Put64(dst + 16, data_end);
  char* e = dst + kVvFooterPrefixSize;
  for (uint64_t i = 0; i < count; i++, e += kVvFooterEntrySize) {
    Put64(e + kEntPayload, entries[i].location.offset);
    Put64(e + kEntLength, entries[i].location.length);
    Put64(e + kEntLogical, entries[i].logical_offset);
    std::memcpy(e + kEntKey, entries[i].key.data(), 16);
    e[kEntKind] = static_cast<char>(entries[i].kind);
  }
  XXH128_hash_t h = XXH3_128bits_withSeed(dst, body, vv_id);
  Put64(dst + body, h.low64);
  Put64(dst + body + 8, h.high64);
}

Status DecodeFooter(const char* src, uint64_t len, uint64_t vv_id, uint64_t* data_end,
                    std::vector<RecordInfo>* entries) {
  if (len < FooterLength(0) || std::memcmp(src, kFooterMagic, 8) != 0)
    return Status::Corruption("bad footer magic");
  uint64_t count = Get64(src + 8);
  if (count > (len - FooterLength(0)) / kVvFooterEntrySize || FooterLength(count) != len)
    return Status::Corruption("footer record count " + std::to_string(count) +
                              " does not match its length " + std::to_string(len));
  uint64_t body = len - kVvFooterChecksumSize;
  XXH128_hash_t h = XXH3_128bits_withSeed(src, body, vv_id);
  uint64_t lo = Get64(src + body), hi = Get64(src + body + 8);
  if (lo != h.low64 || hi != h.high64)
    return Status::Corruption("footer checksum mismatch (stored " + Hex64(hi) + Hex64(lo) +
                              ", computed " + Hex64(h.high64) + Hex64(h.low64) + ")");
  *data_end = Get64(src + 16);
  if (*data_end > (uint64_t{1} << 62))
    return Status::Corruption("footer has an impossible data end " + std::to_string(*data_end));
  entries->clear();
  entries->reserve(count);
  uint64_t next = kVvFirstPayload;  // lowest offset the next payload may start at
  const char* e = src + kVvFooterPrefixSize;
  for (uint64_t i = 0; i < count; i++, e += kVvFooterEntrySize) {
    RecordInfo r;
    r.location.vv_id = vv_id;
    r.location.offset = Get64(e + kEntPayload);
    r.location.length = Get64(e + kEntLength);
    r.logical_offset = Get64(e + kEntLogical);
    std::memcpy(r.key.data(), e + kEntKey, 16);
    uint8_t kind = static_cast<uint8_t>(e[kEntKind]);
    if (!IsKnownRecordKind(kind) || !AllZero(e + kEntKind + 1, kVvFooterEntrySize - kEntKind - 1))
      return Status::Corruption("footer entry " + std::to_string(i) + " is invalid");
    r.kind = static_cast<RecordKind>(kind);
    // Bounding offset and length first keeps the sum from overflowing.
    if (r.location.offset < next || r.location.offset % kVvAlign != 0 ||
        r.location.offset > *data_end || r.location.length > *data_end - r.location.offset)
      return Status::Corruption("footer entry " + std::to_string(i) + " (offset " +
                                std::to_string(r.location.offset) + ", length " +
                                std::to_string(r.location.length) +
                                ") is out of order or past the end of the data");
    next = NextPayloadOffset(r.location.offset + r.location.length);
    entries->push_back(r);
  }
  return Status::OK();
}

// --- trailer ---

void EncodeTrailer(const Trailer& t, uint64_t vv_id, char* dst) {
  std::memset(dst, 0, kVvTrailerSize);
  std::memcpy(dst, kTrailerMagic, 8);
  Put64(dst + kTrlFooterOffset, t.footer_offset);
  Put64(dst + kTrlFooterLength, t.footer_length);
  Put64(dst + kTrlCount, t.record_count);
  Put64(dst + kTrlChecksum, XXH3_64bits_withSeed(dst, kTrlChecksum, vv_id));
}

Status DecodeTrailer(const char* src, uint64_t vv_id, Trailer* t) {
  if (std::memcmp(src, kTrailerMagic, 8) != 0) return Status::NotFound("no trailer");
  uint64_t stored = Get64(src + kTrlChecksum);
  uint64_t computed = XXH3_64bits_withSeed(src, kTrlChecksum, vv_id);
  if (stored != computed) return ChecksumMismatch("trailer", stored, computed);
  if (!AllZero(src + kTrlCount + 8, kTrlChecksum - kTrlCount - 8))
    return Status::Corruption("trailer has non-zero reserved bytes");
  t->footer_offset = Get64(src + kTrlFooterOffset);
  t->footer_length = Get64(src + kTrlFooterLength);
  t->record_count = Get64(src + kTrlCount);
  if (t->record_count > (uint64_t{1} << 48) || t->footer_length != FooterLength(t->record_count))
    return Status::Corruption("trailer footer length " + std::to_string(t->footer_length) +
                              " does not match its record count " +
                              std::to_string(t->record_count));
  return Status::OK();
}

}  // namespace overtier
