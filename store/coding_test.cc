#include "store/coding.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

TEST(Fixed, LittleEndianLayout) {
  std::string s;
  PutFixed32(&s, 0x04030201u);
  PutFixed64(&s, 0x0c0b0a0908070605ull);
  EXPECT_EQ(s, Bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(DecodeFixed32(s.data()), 0x04030201u);
  EXPECT_EQ(DecodeFixed64(s.data() + 4), 0x0c0b0a0908070605ull);
}

TEST(Fixed, BigEndianLayout) {
  std::string s;
  PutBigEndian64(&s, 0x0102030405060708ull);
  EXPECT_EQ(s, Bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(DecodeBigEndian64(s.data()), 0x0102030405060708ull);
}

TEST(Fixed, ExtremesRoundTrip) {
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{0x80}, UINT64_MAX, UINT64_MAX - 1, uint64_t{1} << 63}) {
    std::string le, be;
    PutFixed64(&le, v);
    PutBigEndian64(&be, v);
    EXPECT_EQ(DecodeFixed64(le.data()), v);
    EXPECT_EQ(DecodeBigEndian64(be.data()), v);
  }
}

// The reason keys are big-endian: byte order must be numeric order.
TEST(Fixed, BigEndianKeysSortNumerically) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; i++) {
    // Mix small and large values so both short and long common prefixes occur.
    uint64_t a = rng() >> (rng() % 64), b = rng() >> (rng() % 64);
    EXPECT_EQ(a < b, U64Key(a) < U64Key(b)) << a << " vs " << b;
  }
  EXPECT_LT(U64Key(255), U64Key(256));  // little-endian would order these wrong
}

TEST(Varint, KnownEncodings) {
  std::string s;
  PutVarint32(&s, 0);
  PutVarint32(&s, 127);
  PutVarint32(&s, 128);
  PutVarint32(&s, 300);
  EXPECT_EQ(s, Bytes({0x00, 0x7f, 0x80, 0x01, 0xac, 0x02}));
}

TEST(Varint, RoundTripBoundaries) {
  std::vector<uint64_t> values;
  for (int shift = 0; shift < 64; shift++) {
    uint64_t p = uint64_t{1} << shift;
    values.insert(values.end(), {p - 1, p, p + 1});
  }
  values.push_back(UINT64_MAX);
  std::string s;
  for (uint64_t v : values) PutVarint64(&s, v);
  Decoder d(s);
  for (uint64_t v : values) {
    uint64_t got = 0;
    ASSERT_TRUE(d.GetVarint64(&got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(d.done());
  for (uint64_t v : values) {
    std::string one;
    PutVarint64(&one, v);
    EXPECT_EQ(static_cast<int>(one.size()), VarintLength(v)) << v;
  }
}

TEST(Varint, Varint32RejectsTooLarge) {
  std::string s;
  PutVarint64(&s, uint64_t{UINT32_MAX} + 1);
  Decoder d(s);
  uint32_t v = 0;
  EXPECT_FALSE(d.GetVarint32(&v));
  EXPECT_EQ(d.remaining(), s.size());  // nothing consumed

  std::string max;
  PutVarint32(&max, UINT32_MAX);
  Decoder d2(max);
  ASSERT_TRUE(d2.GetVarint32(&v));
  EXPECT_EQ(v, UINT32_MAX);
}

TEST(Varint, RejectsTruncatedAndOverlong) {
  uint64_t v = 0;
  uint32_t v32 = 0;
  // Continuation bit set on the last byte.
  EXPECT_FALSE(Decoder(Bytes({0x80})).GetVarint64(&v));
  EXPECT_FALSE(Decoder(Bytes({0xff, 0xff})).GetVarint32(&v32));
  EXPECT_FALSE(Decoder("").GetVarint64(&v));
  // Eleven bytes can never be a u64.
  EXPECT_FALSE(Decoder(std::string(10, '\x80') + '\x01').GetVarint64(&v));
  // A tenth byte above 1 would overflow 64 bits.
  EXPECT_FALSE(Decoder(std::string(9, '\xff') + '\x02').GetVarint64(&v));
  EXPECT_TRUE(Decoder(std::string(9, '\xff') + '\x01').GetVarint64(&v));
  EXPECT_EQ(v, UINT64_MAX);
  // A varint32 of more than 5 bytes, even of a small value.
  EXPECT_FALSE(Decoder(Bytes({0x81, 0x80, 0x80, 0x80, 0x80, 0x00})).GetVarint32(&v32));
}

TEST(Decoder, NeverReadsPastTheEnd) {
  std::string s = Bytes({1, 2, 3});
  Decoder d(s);
  uint32_t v32 = 0;
  uint64_t v64 = 0;
  EXPECT_FALSE(d.GetFixed32(&v32));
  EXPECT_FALSE(d.GetFixed64(&v64));
  std::string_view bytes;
  EXPECT_FALSE(d.GetBytes(4, &bytes));
  EXPECT_EQ(d.remaining(), 3u);
  ASSERT_TRUE(d.GetBytes(3, &bytes));
  EXPECT_EQ(bytes, s);
  uint8_t b = 0;
  EXPECT_FALSE(d.GetU8(&b));
  EXPECT_TRUE(d.done());
}

TEST(Decoder, LengthPrefixed) {
  std::string s;
  PutLengthPrefixed(&s, "hello");
  PutLengthPrefixed(&s, "");
  PutLengthPrefixed(&s, std::string(300, 'x'));
  Decoder d(s);
  std::string_view v;
  ASSERT_TRUE(d.GetLengthPrefixed(&v));
  EXPECT_EQ(v, "hello");
  ASSERT_TRUE(d.GetLengthPrefixed(&v));
  EXPECT_EQ(v, "");
  ASSERT_TRUE(d.GetLengthPrefixed(&v));
  EXPECT_EQ(v, std::string(300, 'x'));
  EXPECT_TRUE(d.done());

  // A length larger than what follows consumes nothing.
  std::string bad = Bytes({5, 'a', 'b'});
  Decoder d2(bad);
  EXPECT_FALSE(d2.GetLengthPrefixed(&v));
  EXPECT_EQ(d2.remaining(), 3u);
}

TEST(Decoder, RandomInputNeverOverruns) {
  // Under ASan this checks that no Get reads outside the input.
  std::mt19937 rng(7);
  for (int iter = 0; iter < 20000; iter++) {
    std::string in(rng() % 24, '\0');
    for (char& c : in) c = static_cast<char>(rng());
    // Copy into an exact-size heap buffer so any overrun is caught.
    std::vector<char> buf(in.begin(), in.end());
    Decoder d(std::string_view(buf.data(), buf.size()));
    for (int step = 0; step < 8 && !d.done(); step++) {
      uint8_t u8;
      uint32_t u32;
      uint64_t u64;
      std::string_view sv;
      switch (rng() % 6) {
        case 0:
          d.GetU8(&u8);
          break;
        case 1:
          d.GetFixed32(&u32);
          break;
        case 2:
          d.GetFixed64(&u64);
          break;
        case 3:
          d.GetVarint32(&u32);
          break;
        case 4:
          d.GetVarint64(&u64);
          break;
        default:
          if (d.GetLengthPrefixed(&sv)) {
            ASSERT_GE(sv.data(), buf.data());
            ASSERT_LE(sv.data() + sv.size(), buf.data() + buf.size());
          }
          break;
      }
    }
  }
}

TEST(Tagged128, HexAndBytes) {
  Bfid b;
  EXPECT_TRUE(b.IsZero());
  for (int i = 0; i < 16; i++) b.bytes[i] = static_cast<uint8_t>(i * 17);
  EXPECT_FALSE(b.IsZero());
  EXPECT_EQ(b.ToHex(), "00112233445566778899aabbccddeeff");
  Bfid c;
  ASSERT_TRUE(Bfid::FromBytes(b.view(), &c));
  EXPECT_EQ(b, c);
  EXPECT_FALSE(Bfid::FromBytes("short", &c));
  EXPECT_FALSE(Bfid::FromBytes(std::string(17, 'x'), &c));
}

TEST(Tagged128, RandomIdsDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; i++) {
    StoreId id;
    ASSERT_TRUE(RandomId(&id).ok());
    EXPECT_FALSE(id.IsZero());
    EXPECT_TRUE(seen.insert(std::string(id.view())).second);
  }
}

TEST(Keys, NodeKeyRoundTrip) {
  std::string k = NodeKey(3, 0x0102030405060708ull);
  EXPECT_EQ(k, Bytes({0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_TRUE(k.starts_with(ImagePrefix(3)));
  uint64_t image = 0, ino = 0;
  ASSERT_TRUE(ParseNodeKey(k, &image, &ino));
  EXPECT_EQ(image, 3u);
  EXPECT_EQ(ino, 0x0102030405060708ull);
  EXPECT_FALSE(ParseNodeKey(k.substr(1), &image, &ino));
  EXPECT_FALSE(ParseNodeKey(k + "x", &image, &ino));
}

TEST(Keys, DirentKeyRoundTrip) {
  std::string k = DirentKey(1, 2, "name");
  EXPECT_EQ(k.size(), 20u);
  EXPECT_TRUE(k.starts_with(DirentPrefix(1, 2)));
  uint64_t image = 0, parent = 0;
  std::string_view name;
  ASSERT_TRUE(ParseDirentKey(k, &image, &parent, &name));
  EXPECT_EQ(image, 1u);
  EXPECT_EQ(parent, 2u);
  EXPECT_EQ(name, "name");
  EXPECT_FALSE(ParseDirentKey(DirentPrefix(1, 2), &image, &parent, &name));  // no name
}

// A directory's entries are contiguous and in name order, and never mix with
// the entries of another parent or image, whatever bytes the names hold.
TEST(Keys, DirentKeysGroupByDirectoryInNameOrder) {
  struct E {
    uint64_t image, parent;
    std::string name;
  };
  std::vector<E> entries;
  const std::vector<std::string> names = {"a", "b", "ab", "\xff", "\xff\xff", "\x01", "z", "A"};
  for (uint64_t image : std::vector<uint64_t>{1, 2, 256}) {
    for (uint64_t parent : std::vector<uint64_t>{1, 255, 256, UINT64_MAX}) {
      for (const std::string& n : names) entries.push_back({image, parent, n});
    }
  }
  std::vector<std::string> keys;
  for (const E& e : entries) keys.push_back(DirentKey(e.image, e.parent, e.name));
  std::vector<size_t> order(keys.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  for (size_t i = 1; i < order.size(); i++) {
    const E& p = entries[order[i - 1]];
    const E& q = entries[order[i]];
    auto tp = std::tie(p.image, p.parent, p.name);
    auto tq = std::tie(q.image, q.parent, q.name);
    EXPECT_LT(tp, tq) << "key order differs from (image, parent, name) order";
  }
}

TEST(Keys, U64AndFileKeys) {
  uint64_t id = 0;
  ASSERT_TRUE(ParseU64Key(U64Key(77), &id));
  EXPECT_EQ(id, 77u);
  EXPECT_FALSE(ParseU64Key("1234567", &id));
  Bfid b;
  b.bytes[15] = 9;
  Bfid got;
  ASSERT_TRUE(ParseFileKey(FileKey(b), &got));
  EXPECT_EQ(got, b);
  EXPECT_FALSE(ParseFileKey("x", &got));
}

}  // namespace
}  // namespace overtier
