#include "store/coding.h"

#include <sys/random.h>

#include <cerrno>

namespace overtier {

// The encoders are written byte by byte rather than with memcpy of a native
// integer: the on-disk order is then explicit and independent of the host.

void PutU8(std::string* dst, uint8_t v) { dst->push_back(static_cast<char>(v)); }

void EncodeFixed32(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void EncodeFixed64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  EncodeFixed32(buf, v);
  dst->append(buf, sizeof(buf));
}

void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  EncodeFixed64(buf, v);
  dst->append(buf, sizeof(buf));
}

void PutBigEndian64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; i++) buf[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  dst->append(buf, sizeof(buf));
}

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

void PutVarint32(std::string* dst, uint32_t v) { PutVarint64(dst, v); }

void PutLengthPrefixed(std::string* dst, std::string_view v) {
  PutVarint32(dst, static_cast<uint32_t>(v.size()));
  dst->append(v);
}

int VarintLength(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

uint32_t DecodeFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

uint64_t DecodeBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool Decoder::GetU8(uint8_t* v) {
  if (in_.empty()) return false;
  *v = static_cast<uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

bool Decoder::GetFixed32(uint32_t* v) {
  if (in_.size() < 4) return false;
  *v = DecodeFixed32(in_.data());
  in_.remove_prefix(4);
  return true;
}

bool Decoder::GetFixed64(uint64_t* v) {
  if (in_.size() < 8) return false;
  *v = DecodeFixed64(in_.data());
  in_.remove_prefix(8);
  return true;
}

bool Decoder::GetVarint64(uint64_t* v) {
  uint64_t result = 0;
  // 10 bytes carry 70 bits; the tenth may only hold the top bit of a u64.
  for (size_t i = 0; i < 10 && i < in_.size(); i++) {
    uint8_t byte = static_cast<uint8_t>(in_[i]);
    if (i == 9 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *v = result;
      in_.remove_prefix(i + 1);
      return true;
    }
  }
  return false;  // truncated, or longer than 10 bytes
}

bool Decoder::GetVarint32(uint32_t* v) {
  Decoder probe(in_);
  uint64_t wide = 0;
  if (!probe.GetVarint64(&wide) || wide > UINT32_MAX) return false;
  if (in_.size() - probe.remaining() > 5) return false;  // padded with 0x80 bytes
  *v = static_cast<uint32_t>(wide);
  in_ = probe.in_;
  return true;
}

bool Decoder::GetBytes(size_t n, std::string_view* v) {
  if (in_.size() < n) return false;
  *v = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

bool Decoder::GetLengthPrefixed(std::string_view* v) {
  Decoder probe(in_);
  uint32_t len = 0;
  if (!probe.GetVarint32(&len) || !probe.GetBytes(len, v)) return false;
  in_ = probe.in_;
  return true;
}

std::string HexString(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    uint8_t b = static_cast<uint8_t>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

Status FillRandom(void* p, size_t n) {
  auto* out = static_cast<uint8_t*>(p);
  while (n > 0) {
    ssize_t got = getrandom(out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("getrandom");
    }
    out += got;
    n -= static_cast<size_t>(got);
  }
  return Status::OK();
}

std::string NodeKey(uint64_t image, uint64_t ino) {
  std::string k;
  k.reserve(16);
  PutBigEndian64(&k, image);
  PutBigEndian64(&k, ino);
  return k;
}

std::string ImagePrefix(uint64_t image) {
  std::string k;
  PutBigEndian64(&k, image);
  return k;
}

std::string DirentPrefix(uint64_t image, uint64_t parent) { return NodeKey(image, parent); }

std::string DirentKey(uint64_t image, uint64_t parent, std::string_view name) {
  std::string k;
  k.reserve(16 + name.size());
  PutBigEndian64(&k, image);
  PutBigEndian64(&k, parent);
  k.append(name);
  return k;
}

std::string U64Key(uint64_t id) {
  std::string k;
  PutBigEndian64(&k, id);
  return k;
}

bool ParseNodeKey(std::string_view key, uint64_t* image, uint64_t* ino) {
  if (key.size() != 16) return false;
  *image = DecodeBigEndian64(key.data());
  *ino = DecodeBigEndian64(key.data() + 8);
  return true;
}

bool ParseDirentKey(std::string_view key, uint64_t* image, uint64_t* parent,
                    std::string_view* name) {
  if (key.size() <= 16) return false;  // a name has at least one byte
  *image = DecodeBigEndian64(key.data());
  *parent = DecodeBigEndian64(key.data() + 8);
  *name = key.substr(16);
  return true;
}

bool ParseFileKey(std::string_view key, Bfid* bfid) { return Bfid::FromBytes(key, bfid); }

bool ParseU64Key(std::string_view key, uint64_t* id) {
  if (key.size() != 8) return false;
  *id = DecodeBigEndian64(key.data());
  return true;
}

}  // namespace overtier
