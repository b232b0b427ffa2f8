#include "store/publication_format.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "store/record_samples.h"

namespace overtier {
namespace {

bool HasSubstr(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

Publication Sample(size_t files = 2) { return samples::PublicationOf(files); }

TEST(PublicationFormat, RoundTripsInOnePiece) {
  Publication p = Sample();
  std::vector<std::string> pieces;
  ASSERT_TRUE(EncodePublication(p, 1 << 20, &pieces).ok());
  ASSERT_EQ(pieces.size(), 1u);
  Publication back;
  Status s = DecodePublication(pieces, &back);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(back, p);
}

// A manifest larger than one object is split; every piece counts.
TEST(PublicationFormat, RoundTripsInManyPieces) {
  Publication p = Sample(200);
  std::vector<std::string> pieces;
  ASSERT_TRUE(EncodePublication(p, 1024, &pieces).ok());
  ASSERT_GT(pieces.size(), 5u);
  for (const std::string& piece : pieces) EXPECT_LE(piece.size(), 1024u);
  Publication back;
  ASSERT_TRUE(DecodePublication(pieces, &back).ok());
  EXPECT_EQ(back, p);
  uint32_t count = 0;
  ASSERT_TRUE(PublicationPieceCount(pieces[0], &count).ok());
  EXPECT_EQ(count, pieces.size());

  std::vector<std::string> short_by_one(pieces.begin(), pieces.end() - 1);
  EXPECT_TRUE(HasSubstr(DecodePublication(short_by_one, &back).message(), "pieces"));
  std::vector<std::string> swapped = pieces;
  std::swap(swapped[1], swapped[2]);
  EXPECT_TRUE(HasSubstr(DecodePublication(swapped, &back).message(), "checksum"));
}

TEST(PublicationFormat, EveryFlippedByteIsCaught) {
  std::vector<std::string> pieces;
  ASSERT_TRUE(EncodePublication(Sample(), 1 << 20, &pieces).ok());
  for (size_t i = 0; i < pieces[0].size(); i++) {
    std::vector<std::string> bad = pieces;
    bad[0][i] ^= 0x20;
    Publication out;
    EXPECT_FALSE(DecodePublication(bad, &out).ok()) << "byte " << i;
  }
  std::vector<std::string> cut = pieces;
  cut[0].resize(cut[0].size() - 1);
  Publication out;
  EXPECT_FALSE(DecodePublication(cut, &out).ok());
}

TEST(PublicationFormat, NewerVersionIsNamed) {
  std::vector<std::string> pieces;
  ASSERT_TRUE(EncodePublication(Sample(), 1 << 20, &pieces).ok());
  pieces[0][8] = 2;
  Publication out;
  Status s = DecodePublication(pieces, &out);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(HasSubstr(s.message(), "version 2 is newer")) << s.message();
  EXPECT_FALSE(PublicationPieceCount("OVTIMPUB", nullptr).ok());
  std::string not_ours(64, 'x');
  uint32_t count = 0;
  EXPECT_TRUE(HasSubstr(PublicationPieceCount(not_ours, &count).message(), "magic"));
}

// What a mount would follow must be in the manifest: refused when encoding
// (a bug of ours) and when decoding (damage that kept the checksums right
// cannot happen, but the checks are the same code).
TEST(PublicationFormat, RowsMustHangTogether) {
  std::vector<std::string> pieces;
  Publication p = Sample();
  p.files.erase(p.files.begin());
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "not among the files"));
  p = Sample();
  p.volumes.clear();
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "not among the volumes"));
  p = Sample();
  p.volumes[3] = 4096;
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "past the end"));
  p = Sample();
  p.layers[0].image.parent_image_id = 5;
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "next layer"));
  p = Sample();
  p.layers[1].nodes.clear();
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "root inode"));
  p = Sample();
  p.layers[0].dirents[0].record.child_inode = 99;
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "not in the layer"));
  p = Sample();
  p.files.begin()->second.copies.push_back(p.files.begin()->second.copies[0]);
  EXPECT_TRUE(HasSubstr(EncodePublication(p, 1 << 20, &pieces).message(), "copies"));
}

TEST(PublicationFormat, ObjectNames) {
  EXPECT_EQ(PublicationObjectName("app").size(), 4u + 32u);
  EXPECT_EQ(PublicationObjectName("app").substr(0, 4), "img-");
  EXPECT_NE(PublicationObjectName("app"), PublicationObjectName("App"));
  EXPECT_EQ(PublicationObjectName("app", 3), PublicationObjectName("app") + ".3");
}

}  // namespace
}  // namespace overtier
