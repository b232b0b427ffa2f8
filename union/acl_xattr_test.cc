#include "union/acl_xattr.h"

#include <linux/posix_acl.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
  bool operator==(const AclEntry&) const = default;
};

// The kernel's xattr form, written out byte by byte (little-endian).
std::string Encode(const std::vector<AclEntry>& entries, uint32_t version = 2) {
  std::string s;
  auto put = [&](uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(version, 4);
  for (const AclEntry& e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return s;
}

constexpr uint32_t kUndefined = 0xffffffff;  // ACL_UNDEFINED_ID

// An ACL as getfacl would show `user::rw-, user:U:r--, group::r--,
// group:G:rw-, mask::rw-, other::---`.
std::vector<AclEntry> Sample(uint32_t user, uint32_t group) {
  return {{ACL_USER_OBJ, 6, kUndefined}, {ACL_USER, 4, user},       {ACL_GROUP_OBJ, 4, kUndefined},
          {ACL_GROUP, 6, group},         {ACL_MASK, 6, kUndefined}, {ACL_OTHER, 0, kUndefined}};
}

// uidmapping=100000:0:65536, gidmapping=200000:0:65536: disk ids 100000..
// and 200000.. are 0.. through the mount.
const std::vector<IdMapping> kUids = {{100000, 0, 65536}};
const std::vector<IdMapping> kGids = {{200000, 0, 65536}};

TEST(MapAclIds, ToMountMapsUserAndGroupEntriesOnly) {
  std::string v = Encode(Sample(101000, 201234));
  ASSERT_TRUE(MapAclIds(&v, kUids, kGids, /*to_mount=*/true).ok());
  EXPECT_EQ(v, Encode(Sample(1000, 1234)));
}

TEST(MapAclIds, ToDiskIsTheReverse) {
  std::string v = Encode(Sample(1000, 1234));
  ASSERT_TRUE(MapAclIds(&v, kUids, kGids, /*to_mount=*/false).ok());
  EXPECT_EQ(v, Encode(Sample(101000, 201234)));
}

TEST(MapAclIds, UidsAndGidsUseTheirOwnTable) {
  // Same number in a user and a group entry: each through its own map.
  std::string v = Encode({{ACL_USER, 7, 5}, {ACL_GROUP, 7, 5}});
  ASSERT_TRUE(MapAclIds(&v, kUids, {{300000, 0, 10}}, /*to_mount=*/false).ok());
  EXPECT_EQ(v, Encode({{ACL_USER, 7, 100005}, {ACL_GROUP, 7, 300005}}));
}

TEST(MapAclIds, UnmappedIdsBecomeTheOverflowId) {
  std::string v = Encode(Sample(42, 43));  // below both ranges
  ASSERT_TRUE(MapAclIds(&v, kUids, kGids, /*to_mount=*/true).ok());
  EXPECT_EQ(v, Encode(Sample(65534, 65534)));
}

TEST(MapAclIds, NoMappingLeavesTheValueAlone) {
  const std::string orig = Encode(Sample(1000, 1234));
  std::string v = orig;
  ASSERT_TRUE(MapAclIds(&v, {}, {}, /*to_mount=*/true).ok());
  EXPECT_EQ(v, orig);
}

TEST(MapAclIds, OnlyTheMappedKindChangesWhenOneTableIsEmpty) {
  std::string v = Encode(Sample(1000, 1234));
  ASSERT_TRUE(MapAclIds(&v, kUids, {}, /*to_mount=*/false).ok());
  EXPECT_EQ(v, Encode(Sample(101000, 1234)));
}

TEST(MapAclIds, MalformedValuesAreRejectedUntouched) {
  for (std::string bad : {std::string(), std::string("\x02\x00\x00", 3),
                          Encode(Sample(1, 2)) + "x",  // not whole entries
                          Encode(Sample(1, 2), 1)}) {  // wrong version
    const std::string orig = bad;
    Status s = MapAclIds(&bad, kUids, kGids, /*to_mount=*/true);
    EXPECT_EQ(s.err(), EINVAL) << bad.size() << " bytes";
    EXPECT_EQ(bad, orig);
  }
}

TEST(MapAclIds, HeaderOnlyIsAnEmptyAcl) {
  std::string v = Encode({});
  EXPECT_TRUE(MapAclIds(&v, kUids, kGids, /*to_mount=*/true).ok());
  EXPECT_EQ(v, Encode({}));
}

}  // namespace
}  // namespace overtier
