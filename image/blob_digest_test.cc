#include "image/blob_digest.h"

#include <gtest/gtest.h>

namespace overtier {
namespace {

TEST(BlobDigest, KnownVectors) {
  std::unique_ptr<BlobHasher> h;
  ASSERT_TRUE(BlobHasher::Create("sha256", &h).ok());
  h->Update("ab");
  h->Update("c");
  EXPECT_EQ(h->FinishHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ASSERT_TRUE(BlobHasher::Create("sha512", &h).ok());
  EXPECT_EQ(h->FinishHex().substr(0, 16), "cf83e1357eefb8bd");  // of nothing
  EXPECT_EQ(BlobHasher::Create("md5", &h).err(), ENOTSUP);
}

TEST(BlobDigest, PathsNameDigests) {
  std::string alg, hex;
  ASSERT_TRUE(DigestOfBlobPath("blobs/sha256/abcd", &alg, &hex));
  EXPECT_EQ(alg, "sha256");
  EXPECT_EQ(hex, "abcd");
  EXPECT_FALSE(DigestOfBlobPath("abc/layer.tar", &alg, &hex));
  EXPECT_FALSE(DigestOfBlobPath("blobs/sha256/", &alg, &hex));
  EXPECT_FALSE(DigestOfBlobPath("blobs/sha256/a/b", &alg, &hex));
  EXPECT_FALSE(DigestOfBlobPath("blobs//abcd", &alg, &hex));
}

TEST(BlobDigest, MismatchNamesBoth) {
  EXPECT_TRUE(CheckBlobDigest("x", "sha256", "aa", "aa").ok());
  Status s = CheckBlobDigest("L: blobs/sha256/aa", "sha256", "aa", "bb");
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.message().find("named sha256:aa, the bytes are sha256:bb"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace overtier
